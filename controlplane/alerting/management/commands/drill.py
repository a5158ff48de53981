"""manage.py drill: the running demo server answers real 500s and slow responses for a
few minutes, so the built-in rules api.5xx and api.latency fire from its own metrics
(controlplane/alerting/drill.py has the two URLs)."""

from __future__ import annotations

import argparse
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from controlplane.alerting.drill import FAIL, PREFIX, SLOW, SLOW_SECONDS

REQUEST_TIMEOUT = 10.0
REPORT_EVERY = 15.0
MOST_MINUTES = 60.0
MOST_RATE = 50.0
# Requests in flight at most: a server that stops answering holds each for the timeout.
MOST_IN_FLIGHT = 32
# Requests in a row that reach no server before the drill gives up.
GIVE_UP_AFTER = 10

# The drill talks to the demo's own server: no proxy from the environment in between.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

UNREACHABLE = "unreachable"


def status_of(url: str) -> int | str:
    """The HTTP status the server answers to a GET of `url`, or UNREACHABLE."""
    try:
        with _opener.open(url, timeout=REQUEST_TIMEOUT) as answer:
            answer.read()
            return answer.status
    except urllib.error.HTTPError as error:
        error.close()
        return error.code
    except (urllib.error.URLError, OSError):
        return UNREACHABLE


def tally_text(tally: Counter) -> str:
    """'12 answered 500, 12 slow, 1 unreachable' (what came back so far)."""
    parts = [f"{tally['fail']} answered 500", f"{tally['slow']} slow"]
    parts += [
        f"{count} {what}" for what, count in sorted(tally.items()) if what not in {"fail", "slow"}
    ]
    return ", ".join(parts)


def _positive(most: float):
    def number(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{raw!r} is not a number") from None
        if not 0 < value <= most:
            raise argparse.ArgumentTypeError(f"{raw} must be above 0 and at most {most:g}")
        return value

    return number


class Command(BaseCommand):
    help = (
        "Make the running demo server answer real 500s and slow responses for a few "
        "minutes, so the built-in rules api.5xx and api.latency fire (DEBUG only)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--minutes", type=_positive(MOST_MINUTES), default=3.0, help="how long (3)"
        )
        parser.add_argument(
            "--rate",
            type=_positive(MOST_RATE),
            default=2.0,
            help="requests a second, half of them 500s, half slow (2)",
        )
        parser.add_argument(
            "--url", default="", help="the demo server's base URL (SITE_URL, http://127.0.0.1:8000)"
        )

    def handle(self, *args, minutes: float, rate: float, url: str, **options) -> None:
        if not settings.DEBUG:
            raise CommandError(
                "The drill makes the server answer 500s and slow responses on purpose, so it "
                "runs only with DEBUG on, as the demo does: DEBUG=true .venv/bin/python "
                "manage.py drill. (With DEBUG off the server does not route its URLs either.)"
            )
        base = (url or settings.SITE_URL).rstrip("/")
        targets = {"fail": f"{base}/{PREFIX}{FAIL}", "slow": f"{base}/{PREFIX}{SLOW}"}
        tally: Counter = Counter()
        for kind, expected in (("fail", 500), ("slow", 200)):
            self._check(base, targets[kind], expected)
            tally[kind] += 1

        self.stdout.write(
            f"Drill: {rate:g} requests a second for {minutes:g} min against {base}, half "
            f"answering 500, half taking {SLOW_SECONDS * 1000:.0f} ms. api.5xx fires within "
            "about a minute, api.latency soon after: watch the demo's terminal (the webhook "
            f"sink's lines, the console email) and {base}/alerts/. Ctrl-C stops the drill."
        )
        lock = threading.Lock()
        # Requests in a row that found nobody: the server has stopped, and so does the drill.
        gone = {"in_a_row": 0}

        def one(kind: str) -> None:
            status = status_of(targets[kind])
            expected = 500 if kind == "fail" else 200
            with lock:
                tally[kind if status == expected else str(status)] += 1
                gone["in_a_row"] = gone["in_a_row"] + 1 if status == UNREACHABLE else 0

        started = time.monotonic()
        deadline = started + minutes * 60
        next_report = started + REPORT_EVERY
        with ThreadPoolExecutor(max_workers=MOST_IN_FLIGHT) as pool:
            sent, due = 0, started
            try:
                while due < deadline:
                    if gone["in_a_row"] >= GIVE_UP_AFTER:
                        break
                    time.sleep(max(0.0, due - time.monotonic()))
                    pool.submit(one, "fail" if sent % 2 == 0 else "slow")
                    sent += 1
                    due = started + sent / rate
                    if time.monotonic() >= next_report:
                        with lock:
                            line = tally_text(tally)
                        self.stdout.write(f"{_clock(time.monotonic() - started)}  {line}")
                        next_report += REPORT_EVERY
            except KeyboardInterrupt:
                self.stdout.write("Drill stopped; waiting for the requests in flight.")
        if gone["in_a_row"] >= GIVE_UP_AFTER:
            raise CommandError(
                f"{base} stopped answering after {_clock(time.monotonic() - started)}, and "
                f"so does the drill: {tally_text(tally)}."
            )
        self.stdout.write(
            f"Drill over after {_clock(time.monotonic() - started)}: {tally_text(tally)}. "
            "api.5xx resolves about 5 minutes later, when the 500s leave its 5-minute window."
        )

    def _check(self, base: str, target: str, expected: int) -> None:
        path = target.removeprefix(base)
        status = status_of(target)
        if status == UNREACHABLE:
            raise CommandError(
                f"Nothing answers at {base}: start the demo (make demo), or name its server "
                "with --url."
            )
        if status == 404:
            raise CommandError(
                f"{base} answered 404 to {path}: that server routes the drill only when it "
                "runs with DEBUG on (make demo does)."
            )
        if status != expected:
            raise CommandError(
                f"{base} answered {status} to {path} instead of {expected}: is it this "
                "control plane?"
            )


def _clock(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 60}:{whole % 60:02d}"
