"""The ping endpoints Healthchecks clients speak (PROTOCOLS.md, "Healthchecks ping API"),
so a cron job moves here by changing its base URL.

    HEAD|GET|POST /ping/<ping-key>/<slug>               success
                  /ping/<ping-key>/<slug>/start         a run starts
                  /ping/<ping-key>/<slug>/fail          failure
                  /ping/<ping-key>/<slug>/log           a log line, no change of status
                  /ping/<ping-key>/<slug>/<0-255>       exit status: 0 success, else failure
    ?rid=<uuid>   pairs a start with its finish; ?create=1 creates an unknown slug (201)

The key in the URL is the credential: no session, no CSRF token. Answers are short
text/plain bodies, as Healthchecks gives them ("OK", "Created", "not found..."), and
every one carries `Ping-Body-Limit`. Clients treat anything but 200 and 201 as a failed
ping and retry, so every refusal says why in its body and none is a 500.

The request body becomes the run's excerpt. Healthchecks keeps the first
PING_BODY_LIMIT bytes; we keep the last EXCERPT_LIMIT, as runs.record_ping does: the
end of a log says why a job stopped (runitor sends the tail for the same reason). So
the body is read through, in chunks, holding no more than the limit, up to
MOST_BODY_BYTES; past that the rest is left unread and the excerpt is the end of what
was read. Either way the run is recorded and marked truncated.

A flood of pings for one monitor is refused with 429 before any query, by a
fixed-window counter per ping URL in Django's cache (`admit`). With the default
local-memory cache each process counts on its own, so N web processes let through up
to N times JOB_PINGS_PER_MINUTE; a shared cache (Redis) makes it one limit. A column
on JobMonitorState would count across processes, but would put a write on the very
row a flood is hammering, which is what the limit is there to spare.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.views.decorators.csrf import csrf_exempt

from controlplane.catalog.actors import Actor, acting
from controlplane.jobs.models import EXCERPT_LIMIT, SLUG, JobMonitor, PingKey
from controlplane.jobs.runs import Ping, record_ping
from observability import context, tracing

logger = logging.getLogger(__name__)

BODY_LIMIT_HEADER = "Ping-Body-Limit"
METHODS = ("GET", "HEAD", "POST")
# Past this a body is left unread: well above the 10 MB log a job may send, and
# short of what keeps a web worker busy for long.
MOST_BODY_BYTES = 16 * 1024 * 1024
_CHUNK = 64 * 1024
# PingKey.key: secrets.token_urlsafe, at most 64 characters.
_KEY_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,64}")
# As Healthchecks: a run id is a UUID in its canonical form, any case.
_RID_SHAPE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
WINDOW_SECONDS = 60
ACTOR = Actor.system("jobs.ping")
SPAN_NAME = "jobs.ping"
# Monitors made by ?create=1 are scheduled as Healthchecks makes them: every day, an
# hour's grace, until someone gives them their real schedule.
CREATED_PERIOD = timedelta(days=1)
CREATED_GRACE = timedelta(hours=1)


def pings_per_minute() -> int:
    return getattr(settings, "JOB_PINGS_PER_MINUTE", 60)


def creations_per_minute() -> int:
    return getattr(settings, "JOB_PING_CREATIONS_PER_MINUTE", 10)


# --- the body ---------------------------------------------------------------------------


class Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


def read_tail(stream: Readable, limit: int, most: int = MOST_BODY_BYTES) -> tuple[bytes, bool]:
    """The last `limit` bytes of the first `most` bytes of `stream`, and whether
    anything was left out. Never holds much more than `limit` bytes."""
    kept = bytearray()
    seen = 0
    while seen < most:
        chunk = stream.read(min(_CHUNK, most - seen))
        if not chunk:
            break
        seen += len(chunk)
        kept += chunk
        if len(kept) > limit:
            del kept[: len(kept) - limit]
    return bytes(kept), seen > limit


def excerpt_text(tail: bytes, truncated: bool) -> str:
    """The body as text a database can hold: UTF-8 with replacement characters for
    what does not decode, and for NUL (PostgreSQL refuses it in text)."""
    if truncated:
        # The cut may fall inside a character: its continuation bytes would only
        # decode to replacement characters.
        start = 0
        while start < min(3, len(tail)) and 0x80 <= tail[start] <= 0xBF:
            start += 1
        tail = tail[start:]
    return tail.decode("utf-8", "replace").replace("\x00", "\ufffd")


# --- the rate limit ---------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    index: int  # which window `now` falls in
    left: int  # whole seconds until the next one begins (at least 1)


def window(now: float, length: int = WINDOW_SECONDS) -> Window:
    index = math.floor(now / length)
    return Window(index, max(1, math.ceil((index + 1) * length - now)))


def admit(name: str, limit: int, clock: Callable[[], float] = time.time) -> int | None:
    """Count one more request under `name` in the current window: None when it is
    within `limit`, else the seconds until the window ends (for Retry-After).

    A cache that fails lets the request through: pings matter more than the limit.
    """
    now = window(clock())
    key = f"jobs.ping:{hashlib.sha256(name.encode()).hexdigest()[:32]}:{now.index}"
    try:
        cache.add(key, 0, timeout=WINDOW_SECONDS + 5)
        try:
            count = cache.incr(key)
        except ValueError:  # evicted between add and incr
            cache.set(key, 1, timeout=WINDOW_SECONDS + 5)
            count = 1
    except Exception:
        logger.warning("The ping rate limit could not reach the cache", exc_info=True)
        return None
    return None if count <= limit else now.left


# --- the endpoint -----------------------------------------------------------------------


def answer(text: str, status: int = 200, **headers: str) -> HttpResponse:
    response = HttpResponse(text, status=status, content_type="text/plain; charset=utf-8")
    response[BODY_LIMIT_HEADER] = str(EXCERPT_LIMIT)
    # As Healthchecks: a page's script may ping and read the answer.
    response["Access-Control-Allow-Origin"] = "*"
    add_never_cache_headers(response)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def not_found(slug: str = "") -> HttpResponse:
    # Healthchecks clients look for "not found" in the body. An unknown key and an
    # unknown slug read the same, so the answer tells nobody which keys exist.
    what = f"no job monitor {slug!r} under this ping key" if slug else "no such ping URL"
    return answer(f"not found: {what}", 404)


def valid_slug(slug: str) -> bool:
    try:
        SLUG(slug)
    except ValidationError:
        return False
    return True


@csrf_exempt
def ping(
    request: HttpRequest,
    ping_key: str,
    slug: str,
    kind: str = "success",
    exit_status: int | None = None,
) -> HttpResponse:
    if request.method not in METHODS:
        return answer("method not allowed: use GET, HEAD or POST", 405, Allow=", ".join(METHODS))
    if not valid_slug(slug):
        return answer(
            "invalid slug: use 1 to 64 lowercase letters, digits, dashes and underscores, "
            "starting with a letter or digit, e.g. payroll-export",
            400,
        )
    if not _KEY_SHAPE.fullmatch(ping_key):
        return not_found(slug)
    if exit_status is not None and exit_status > 255:
        return answer("invalid url format: an exit status is 0 to 255", 400)
    run_id = None
    rid = request.GET.get("rid")
    if rid is not None:
        if not _RID_SHAPE.fullmatch(rid):
            return answer(
                "invalid uuid format: rid must be a UUID such as "
                "123e4567-e89b-12d3-a456-426614174000",
                400,
            )
        run_id = uuid.UUID(rid)

    limit = pings_per_minute()
    wait = admit(f"{ping_key}/{slug}", limit)
    if wait is not None:
        return answer(
            f"rate limited: more than {limit} pings a minute for this monitor; "
            f"try again in {wait} s",
            429,
            Retry_After=str(wait),
        )

    created = False
    try:
        monitor = JobMonitor.objects.select_related("organization").get(
            ping_key__key=ping_key, slug=slug
        )
    except JobMonitor.DoesNotExist:
        if request.GET.get("create") != "1":
            return not_found(slug)
        made = _create(ping_key, slug)
        if isinstance(made, HttpResponse):
            return made
        monitor, created = made

    tail, truncated = read_tail(request, EXCERPT_LIMIT)
    context.bind(organization_id=str(monitor.organization_id))
    # The caller's traceparent made the request's span a child of its own (the
    # observability middleware); this span under it is the ping, and the run keeps
    # its ids, so the run opens the job's own trace.
    with tracing.span(SPAN_NAME, {"app.job": monitor.slug, "app.job.ping": kind}):
        record_ping(
            monitor,
            Ping(
                kind=kind,
                at=timezone.now(),
                exit_code=exit_status,
                run_id=run_id,
                body=excerpt_text(tail, truncated),
                body_truncated=truncated,
                trace_id=tracing.current_trace_id() or "",
                span_id=tracing.current_span_id() or "",
            ),
            ACTOR,
        )
    return answer("Created", 201) if created else answer("OK")


def _create(ping_key: str, slug: str) -> tuple[JobMonitor, bool] | HttpResponse:
    """?create=1: a monitor of the key's organisation named after its slug, and whether
    this ping made it (another may have, a moment before); or the refusal."""
    key = PingKey.objects.filter(key=ping_key).first()
    if key is None:
        return not_found(slug)
    context.bind(organization_id=str(key.organization_id))
    wait = admit(f"create:{ping_key}", creations_per_minute())
    if wait is not None:
        return answer(
            f"rate limited: more than {creations_per_minute()} monitors a minute created "
            f"through this ping key; try again in {wait} s",
            429,
            Retry_After=str(wait),
        )
    monitor = JobMonitor(
        organization_id=key.organization_id,
        slug=slug,
        name=slug,
        schedule_kind=JobMonitor.Schedule.PERIOD,
        period=CREATED_PERIOD,
        grace=CREATED_GRACE,
        ping_key=key,
    )
    try:
        # Nobody signs in to ping: the trail names the ping endpoint as the author.
        with transaction.atomic(), acting(ACTOR):
            monitor.save()
    except IntegrityError:
        # Another ping created it a moment ago, or the organisation's monitor of this
        # slug reports under another of its keys.
        existing = JobMonitor.objects.filter(ping_key=key, slug=slug).first()
        if existing is None:
            return answer(
                f"conflict: the monitor {slug!r} reports under another ping key of this "
                "organisation",
                409,
            )
        return existing, False
    logger.info("A ping created the job monitor %s of organisation %s", slug, key.organization_id)
    return monitor, True


@csrf_exempt
def unknown(request: HttpRequest, rest: str = "") -> HttpResponse:
    """Anything else under /ping/: Healthchecks' answer, not the site's 404 page."""
    return not_found()
