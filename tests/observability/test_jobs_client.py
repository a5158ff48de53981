"""observability.jobs reporting runs to a control plane's ping endpoint: the exact
URLs, the run id pairing a start with its finish, the job span's traceparent, the
bodies, exit statuses, and a control plane that is down, failing or hanging, which
never changes how the job ends. Against a recording receiver on loopback, through the
decorator, the context manager and the command line; and once against the control
plane's own /ping/ (live_server), which records the run.
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from prometheus_client import REGISTRY

from observability import jobs
from observability.jobs import (
    BODY_LIMIT,
    PING_URL_VARIABLE,
    PingEndpoint,
    exit_status,
    finish_body,
    finish_suffix,
    job_run,
    note,
    system_exit_status,
    tail_bytes,
    traceparent,
)
from tests.services import free_port

ROOT = Path(__file__).resolve().parents[2]
KEY = "pk_0123456789abcdef"
RID = uuid.UUID("12345678-1234-4234-8234-123456789abc")


@pytest.fixture(autouse=True)
def _package_names(observability_on) -> None:
    """No JOB_METRICS_NAMESPACE: the package's own names, whatever the project sets."""


@pytest.fixture(autouse=True)
def _quick_retries(monkeypatch) -> None:
    # The pauses between attempts, not the attempts: a failing ping is still tried 3 times.
    monkeypatch.setattr(jobs, "RETRY_PAUSES", (0.01, 0.01))
    monkeypatch.delenv(PING_URL_VARIABLE, raising=False)


# --- a control plane stand-in that records pings ----------------------------------------


@dataclass(frozen=True)
class Received:
    method: str
    path: str  # without the query
    query: dict[str, str]
    headers: dict[str, str]  # lowercased names
    body: bytes

    @property
    def rid(self) -> str:
        return self.query["rid"]

    @property
    def trace_id(self) -> str:
        return self.headers["traceparent"].split("-")[1]

    @property
    def span_id(self) -> str:
        return self.headers["traceparent"].split("-")[2]


class PingReceiver:
    """Answers 200 "OK" with Ping-Body-Limit, as the control plane does, or what a
    test scripts for the next requests: a status, or a hang of some seconds."""

    def __init__(self, body_limit: int = BODY_LIMIT) -> None:
        self.received: list[Received] = []
        self.body_limit = body_limit
        self._script: deque[tuple[int, float]] = deque()
        self._closing = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                receiver.received.append(
                    Received(
                        method=self.command,
                        path=parts.path,
                        query={k: v[0] for k, v in parse_qs(parts.query).items()},
                        headers={k.lower(): v for k, v in self.headers.items()},
                        body=body,
                    )
                )
                status, hang = receiver._script.popleft() if receiver._script else (200, 0.0)
                if hang:
                    receiver._closing.wait(hang)
                text = b"OK" if status == 200 else b"unavailable"
                try:
                    self.send_response(status)
                    self.send_header("Ping-Body-Limit", str(receiver.body_limit))
                    self.send_header("Content-Length", str(len(text)))
                    self.end_headers()
                    self.wfile.write(text)
                except OSError:
                    pass  # the client gave up waiting

            do_GET = do_POST = do_HEAD = _any

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/ping/{KEY}"

    def answer_next(self, count: int, status: int) -> None:
        self._script.extend([(status, 0.0)] * count)

    def hang_next(self, count: int, seconds: float) -> None:
        self._script.extend([(200, seconds)] * count)

    def close(self) -> None:
        self._closing.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[PingReceiver]:
    receiving = PingReceiver()
    yield receiving
    receiving.close()


def unreachable_base() -> str:
    """A loopback port nothing listens on: connections are refused at once."""
    return f"http://127.0.0.1:{free_port()}/ping/{KEY}"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# --- pure pieces --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "slug", "suffix", "expected"),
    [
        ("https://cp.example/ping/k", "payroll-export", "/start", "/ping/k/payroll-export/start"),
        ("https://cp.example/ping/k/", "payroll-export", "", "/ping/k/payroll-export"),
        ("https://cp.example/ping/k", "etl_nightly", "/fail", "/ping/k/etl_nightly/fail"),
        ("https://cp.example/ping/k", "backup-db", "/3", "/ping/k/backup-db/3"),
        ("https://cp.example/ping/k", "a/b?c", "", "/ping/k/a%2Fb%3Fc"),
    ],
)
def test_ping_urls_append_slug_suffix_and_run_id(base, slug, suffix, expected):
    assert PingEndpoint(base, slug).url(suffix, RID) == f"https://cp.example{expected}?rid={RID}"


def test_logs_name_the_control_plane_by_origin_never_by_its_ping_key():
    endpoint = PingEndpoint(f"https://user:pw@cp.example:8443/ping/{KEY}", "backup-db")
    assert endpoint.origin == "https://cp.example:8443"
    quoted = f"InvalidURL: {endpoint.url('/start', RID)} is odd"
    assert KEY not in endpoint.redact(quoted)
    assert "https://user:pw@cp.example:8443/…/backup-db/start" in endpoint.redact(quoted)


@pytest.mark.parametrize(
    ("status", "failed", "suffix"),
    [(None, False, ""), (None, True, "/fail"), (0, False, "/0"), (3, True, "/3")],
)
def test_the_finish_suffix(status, failed, suffix):
    assert finish_suffix(status, failed) == suffix


@pytest.mark.parametrize(
    ("code", "status"), [(0, 0), (3, 3), (255, 255), (256, 0), (-15, 143), (-9, 137)]
)
def test_exit_statuses_as_a_shell_reports_them(code, status):
    assert exit_status(code) == status


@pytest.mark.parametrize(("code", "status"), [(None, 0), (0, 0), (4, 4), ("bad input", 1)])
def test_sys_exit_statuses(code, status):
    assert system_exit_status(SystemExit(code)) == status


@pytest.mark.parametrize(
    ("data", "limit", "expected"),
    [
        (b"abc", 10, b"abc"),
        (b"abcdef", 3, b"def"),
        ("xé".encode(), 1, b""),  # the cut falls inside é: its second byte alone is dropped
        ("aé€".encode(), 4, "€".encode()),
        ("aé€".encode(), 5, "é€".encode()),
    ],
)
def test_tails_keep_the_last_bytes_and_never_start_inside_a_character(data, limit, expected):
    kept = tail_bytes(data, limit)
    assert kept == expected
    assert len(kept) <= limit
    kept.decode()  # whole characters only


def test_the_finish_body_is_the_output_then_the_traceback_cut_to_the_limit():
    try:
        raise RuntimeError("disk full")
    except RuntimeError as error:
        body = finish_body(b"exported 3 rows", error, 10_000).decode()
        short = finish_body(b"x" * 20_000, error, 100)
    assert body.startswith("exported 3 rows\nTraceback (most recent call last):")
    assert body.endswith("RuntimeError: disk full\n")
    assert len(short) == 100
    assert short.endswith(b"RuntimeError: disk full\n")
    assert finish_body(b"done\n", SystemExit(2), 100) == b"done\n"


def test_traceparent_names_a_span_and_nothing_outside_one(spans):
    with job_run("tests.traceparent") as span:
        header = traceparent(span.get_span_context())
    context = span.get_span_context()
    assert header == f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"
    from opentelemetry.trace import INVALID_SPAN_CONTEXT

    assert traceparent(INVALID_SPAN_CONTEXT) is None


# --- the decorator and the context manager ----------------------------------------------


def test_a_run_reports_its_start_and_success_with_one_run_id_and_the_job_span(receiver, spans):
    @job_run("tests.payroll", slug="payroll-export", ping_url=receiver.base)
    def export() -> int:
        note("exported 12 payslips")
        return 12

    assert export() == 12

    start, finish = receiver.received
    assert (start.method, start.path) == ("POST", f"/ping/{KEY}/payroll-export/start")
    assert (finish.method, finish.path) == ("POST", f"/ping/{KEY}/payroll-export")
    assert start.rid == finish.rid
    assert str(uuid.UUID(start.rid)) == start.rid
    assert set(start.query) == {"rid"}
    [span] = spans.get_finished_spans()
    context = span.get_span_context()
    for ping in (start, finish):
        assert ping.trace_id == f"{context.trace_id:032x}"
        assert ping.span_id == f"{context.span_id:016x}"  # the job's span, not a client's
    assert span.attributes["app.job.run_id"] == start.rid
    assert span.attributes["app.job.slug"] == "payroll-export"
    assert start.body == b""
    assert finish.body == b"exported 12 payslips\n"
    assert sample("job_runs_total", job="tests.payroll", result="success") >= 1


def test_each_call_of_a_decorated_job_is_a_run_of_its_own(receiver, spans):
    @job_run("tests.each", slug="equipment-sync", ping_url=receiver.base)
    def sync() -> None:
        pass

    sync()
    sync()

    rids = [ping.rid for ping in receiver.received]
    assert rids[0] == rids[1] != rids[2] == rids[3]
    traces = {ping.trace_id for ping in receiver.received}
    assert len(traces) == 2


def test_an_exception_is_reraised_and_reported_as_fail_with_its_traceback(receiver, spans):
    before = sample("job_runs_total", job="tests.etl", result="failure")

    @job_run("tests.etl", slug="etl-nightly", ping_url=receiver.base)
    def load() -> None:
        note("loaded 10 of 20 files")
        raise ValueError("file 11 is not CSV")

    with pytest.raises(ValueError, match="file 11 is not CSV"):
        load()

    start, finish = receiver.received
    assert finish.path == f"/ping/{KEY}/etl-nightly/fail"
    assert finish.rid == start.rid
    text = finish.body.decode()
    assert text.startswith("loaded 10 of 20 files\nTraceback")
    assert text.endswith("ValueError: file 11 is not CSV\n")
    assert sample("job_runs_total", job="tests.etl", result="failure") == before + 1


def test_sys_exit_is_reported_with_its_status_and_reraised(receiver, spans):
    with pytest.raises(SystemExit), job_run("tests.exit", slug="backup-db", ping_url=receiver.base):
        sys.exit(4)
    with pytest.raises(SystemExit), job_run("tests.exit", slug="backup-db", ping_url=receiver.base):
        sys.exit(0)

    paths = [ping.path for ping in receiver.received]
    assert paths[1] == f"/ping/{KEY}/backup-db/4"
    assert paths[3] == f"/ping/{KEY}/backup-db/0"
    assert sample("job_runs_total", job="tests.exit", result="failure") == 1
    assert sample("job_runs_total", job="tests.exit", result="success") == 1


def test_a_context_manager_run_reports_the_exit_status_it_sets(receiver, spans):
    run = job_run("tests.status", slug="backup-db", ping_url=receiver.base)
    with run:
        run.note("pg_dump: connection lost")
        run.exit_code = 2

    start, finish = receiver.received
    assert finish.path == f"/ping/{KEY}/backup-db/2"
    assert start.rid == finish.rid == str(run.run_id)
    assert finish.body == b"pg_dump: connection lost\n"
    [span] = spans.get_finished_spans()
    assert span.attributes["process.exit.code"] == 2
    assert span.status.description == "exit status 2"


def test_the_ping_url_comes_from_the_environment_at_each_run(receiver, spans, monkeypatch):
    @job_run("tests.env", slug="payroll-export")
    def export() -> None:
        pass

    export()  # no URL anywhere: not reported
    assert receiver.received == []

    monkeypatch.setenv(PING_URL_VARIABLE, receiver.base + "/")
    export()
    assert [ping.path for ping in receiver.received] == [
        f"/ping/{KEY}/payroll-export/start",
        f"/ping/{KEY}/payroll-export",
    ]


def test_a_job_without_a_slug_is_not_reported_even_with_the_url_set(receiver, spans, monkeypatch):
    monkeypatch.setenv(PING_URL_VARIABLE, receiver.base)
    with job_run("tests.unmonitored"):
        pass
    assert receiver.received == []


def test_a_ping_url_without_a_slug_is_refused_where_it_is_written():
    with pytest.raises(TypeError, match="slug"):
        job_run("tests.noslug", ping_url="https://cp.example/ping/k")


def test_the_output_sent_is_its_tail_within_the_limit_the_control_plane_announces(spans):
    announcing = PingReceiver(body_limit=100)
    try:
        with job_run("tests.big", slug="etl-nightly", ping_url=announcing.base):
            for line in range(5000):
                note(f"row {line:05d}")
        unannounced = PingReceiver(body_limit=10**9)
        try:
            with job_run("tests.big", slug="etl-nightly", ping_url=unannounced.base):
                note("é" * 30_000)
        finally:
            unannounced.close()
    finally:
        announcing.close()

    finish = announcing.received[1]
    assert len(finish.body) <= 100
    assert finish.body.endswith(b"row 04999\n")
    big = unannounced.received[1].body
    assert len(big) <= BODY_LIMIT
    assert len(big) >= BODY_LIMIT - 2
    assert big.decode() == "é" * (len(big) // 2) + "\n"


# --- a control plane that is down, failing or slow ----------------------------------------


def test_an_unreachable_control_plane_is_logged_and_the_job_result_kept(spans, caplog):
    base = unreachable_base()
    ran = []

    @job_run("tests.down", slug="payroll-export", ping_url=base)
    def export() -> str:
        ran.append(True)
        return "done"

    with caplog.at_level(logging.WARNING, logger="observability.jobs"):
        started = time.monotonic()
        assert export() == "done"
        took = time.monotonic() - started

    assert ran == [True]
    assert took < 5
    warnings = [r for r in caplog.records if r.name == "observability.jobs"]
    assert [r.ping for r in warnings] == ["start", "finish (success)"]
    for record in warnings:
        message = record.getMessage()
        assert "payroll-export" in message
        assert "3 attempts" in message
        assert "ConnectionRefusedError" in message
        assert KEY not in message  # the ping key is a secret
    assert sample("job_runs_total", job="tests.down", result="success") >= 1


def test_an_unreachable_control_plane_keeps_the_jobs_own_exception(spans, caplog):
    with pytest.raises(KeyError), job_run("tests.down", slug="x", ping_url=unreachable_base()):
        raise KeyError("missing")
    assert len([r for r in caplog.records if r.name == "observability.jobs"]) == 2


def test_5xx_answers_are_retried_and_the_ping_then_counts(receiver, spans, caplog):
    receiver.answer_next(2, 503)
    with job_run("tests.retry", slug="payroll-export", ping_url=receiver.base):
        pass

    paths = [ping.path for ping in receiver.received]
    assert paths == [f"/ping/{KEY}/payroll-export/start"] * 3 + [f"/ping/{KEY}/payroll-export"]
    assert len({ping.rid for ping in receiver.received}) == 1
    assert not [r for r in caplog.records if r.name == "observability.jobs"]


def test_a_control_plane_failing_every_attempt_is_logged_once_per_ping(receiver, spans, caplog):
    receiver.answer_next(6, 500)
    with job_run("tests.500", slug="payroll-export", ping_url=receiver.base):
        pass
    assert len(receiver.received) == 6
    messages = [r.getMessage() for r in caplog.records if r.name == "observability.jobs"]
    assert len(messages) == 2
    assert "HTTP 500: unavailable" in messages[0]


def test_a_refusal_is_not_retried_and_says_why(receiver, spans, caplog):
    receiver.answer_next(2, 404)
    with job_run("tests.404", slug="no-such-job", ping_url=receiver.base):
        pass
    assert len(receiver.received) == 2  # one start, one finish
    messages = [r.getMessage() for r in caplog.records if r.name == "observability.jobs"]
    assert all("HTTP 404" in message and "1 attempt)" in message for message in messages)


def test_a_hanging_control_plane_costs_the_job_its_timeouts_only(receiver, spans, caplog):
    receiver.hang_next(6, seconds=30)
    started = time.monotonic()
    with job_run("tests.hang", slug="payroll-export", ping_url=receiver.base, ping_timeout=0.2):
        pass
    took = time.monotonic() - started
    # Two pings of three attempts of 0.2 s each, and the short pauses.
    assert 6 * 0.2 <= took < 4
    messages = [r.getMessage() for r in caplog.records if r.name == "observability.jobs"]
    assert len(messages) == 2
    assert all("timed out" in message for message in messages)


def test_a_url_that_is_not_http_is_logged_and_never_opened(spans, caplog, tmp_path):
    with job_run("tests.file", slug="x", ping_url=f"file://{tmp_path}"):
        pass
    messages = [r.getMessage() for r in caplog.records if r.name == "observability.jobs"]
    assert len(messages) == 2
    assert "not an http:// or https:// URL" in messages[0]


# --- the command line ------------------------------------------------------------------


def command_line(*arguments: str, **env: str) -> subprocess.CompletedProcess[bytes]:
    """`python -m observability.jobs ...` as a cron line runs it: outside any Django
    project, with no metrics directory."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DJANGO_SETTINGS_MODULE", "PROMETHEUS_MULTIPROC_DIR", PING_URL_VARIABLE}
    }
    return subprocess.run(
        [sys.executable, "-m", "observability.jobs", *arguments],
        cwd=ROOT,
        env={**environment, **env},
        capture_output=True,
        timeout=60,
        check=False,
    )


def test_the_command_line_streams_the_output_and_reports_the_exit_status(receiver):
    done = command_line(
        "run",
        "--job",
        "backup-db",
        "--ping-url",
        receiver.base,
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    )

    assert done.returncode == 3
    assert done.stdout == b"out\n"
    assert done.stderr == b"err\n"
    start, finish = receiver.received
    assert start.path == f"/ping/{KEY}/backup-db/start"
    assert finish.path == f"/ping/{KEY}/backup-db/3"
    assert start.rid == finish.rid
    assert start.headers["traceparent"] == finish.headers["traceparent"]
    assert len(start.trace_id) == 32
    assert start.trace_id != "0" * 32
    # Both streams, each line whole; their order is the pipes' race, not the command's.
    assert sorted(finish.body.splitlines(keepends=True)) == [b"err\n", b"out\n"]


def test_the_command_line_reports_success_as_exit_status_0(receiver):
    done = command_line(
        "run", "--job", "etl-nightly", "--", "true", **{PING_URL_VARIABLE: receiver.base}
    )
    assert done.returncode == 0
    assert [ping.path for ping in receiver.received] == [
        f"/ping/{KEY}/etl-nightly/start",
        f"/ping/{KEY}/etl-nightly/0",
    ]


def test_the_command_line_keeps_the_exit_status_when_the_control_plane_is_down():
    done = command_line(
        "run",
        "--job",
        "backup-db",
        "--ping-url",
        unreachable_base(),
        "--",
        "sh",
        "-c",
        "echo out; exit 3",
    )
    assert done.returncode == 3
    assert done.stdout == b"out\n"
    log = done.stderr.decode()
    assert log.count("observability.jobs: WARNING: job backup-db") == 2
    assert "its finish (exit status 3) was not reported" in log
    assert "ConnectionRefusedError" in log
    assert KEY not in log


def test_the_command_line_reports_a_command_it_cannot_find_as_127(receiver):
    done = command_line(
        "run", "--job", "backup-db", "--ping-url", receiver.base, "--", "no-such-command-here"
    )
    assert done.returncode == 127
    assert b"no-such-command-here" in done.stderr
    assert receiver.received[1].path == f"/ping/{KEY}/backup-db/127"
    assert b"no-such-command-here" in receiver.received[1].body


def test_the_command_line_forwards_sigterm_and_reports_the_status_it_ended_with(receiver):
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "observability.jobs",
            "run",
            "--job",
            "backup-db",
            "--ping-url",
            receiver.base,
            "--",
            "sh",
            "-c",
            "echo started; exec sleep 30",
        ],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stdout.readline() == b"started\n"
        process.terminate()
        assert process.wait(timeout=30) == 143
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()
    assert receiver.received[1].path == f"/ping/{KEY}/backup-db/143"


def test_the_command_line_wants_a_command_after_the_double_dash():
    done = command_line("run", "--job", "backup-db")
    assert done.returncode == 2
    assert b"after --" in done.stderr


# --- against the control plane's own ping endpoint ---------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_control_plane_records_the_runs_reported_with_their_trace(live_server, spans):
    from controlplane.catalog.models import Organization
    from controlplane.jobs.models import JobRun
    from tests.factories import make_job

    organization = Organization.objects.create(slug="acme", name="Acme")
    monitor = make_job(organization, "payroll-export", kind="payroll")
    base = f"{live_server.url}/ping/{monitor.ping_key.key}"

    run = job_run("tests.live", slug="payroll-export", ping_url=base)
    with run as span:
        note("exported 12 payslips")
    with (
        pytest.raises(ValueError, match="refused"),
        job_run("tests.live", slug="payroll-export", ping_url=base),
    ):
        raise ValueError("bank file refused")
    done = command_line(
        "run", "--job", "payroll-export", "--ping-url", base, "--", "sh", "-c", "echo out; exit 3"
    )
    assert done.returncode == 3, done.stderr

    succeeded, failed, exited = JobRun.objects.filter(monitor=monitor).order_by("created_at")
    assert succeeded.run_id == run.run_id
    assert succeeded.outcome == JobRun.Outcome.SUCCESS
    assert succeeded.trace_id == f"{span.get_span_context().trace_id:032x}"
    assert succeeded.excerpt == "exported 12 payslips\n"
    assert succeeded.started_at is not None
    assert failed.outcome == JobRun.Outcome.FAILURE
    assert failed.excerpt.endswith("ValueError: bank file refused\n")
    assert (exited.outcome, exited.exit_code, exited.excerpt) == (
        JobRun.Outcome.FAILURE,
        3,
        "out\n",
    )
    assert len({succeeded.trace_id, failed.trace_id, exited.trace_id}) == 3


@pytest.mark.django_db(transaction=True)
def test_the_demo_jobs_report_each_run_to_the_control_plane(live_server, spans, monkeypatch):
    from django.conf import settings
    from django.core.management import call_command

    from controlplane.catalog.models import Organization
    from controlplane.jobs.management.commands import run_demo_jobs
    from controlplane.jobs.models import JobMonitor, JobRun

    Organization.objects.create(slug="demo", name="Demo")
    # Quick runs, the ETL load failing: what the seeded generator does, minus the waiting.
    monkeypatch.setattr(
        run_demo_jobs,
        "plan",
        lambda job, rng: run_demo_jobs.Plan(0.05, job.slug == "etl-nightly", 100),
    )
    before = settings.OBSERVABILITY
    out = io.StringIO()

    call_command("run_demo_jobs", once=True, site_url=live_server.url, stdout=out)
    call_command("run_demo_jobs", once=True, site_url=live_server.url, stdout=io.StringIO())

    # The demo's own jobs: the organisation's built-in audit-retention monitor is the
    # control plane's (tests/audit/test_job.py).
    monitors = {
        m.slug: m
        for m in JobMonitor.objects.filter(organization__slug="demo").exclude(kind="audit")
    }
    assert {slug: m.kind for slug, m in monitors.items()} == {
        "payroll-export": "payroll",
        "equipment-sync": "equipment",
        "etl-nightly": "etl",
        "backup-db": "backup",
    }
    runs = {
        slug: list(JobRun.objects.filter(monitor=m).order_by("created_at"))
        for slug, m in monitors.items()
    }
    assert {slug: [r.outcome for r in found] for slug, found in runs.items()} == {
        "payroll-export": ["success", "success"],
        "equipment-sync": ["success", "success"],
        "etl-nightly": ["failure", "failure"],
        "backup-db": ["success", "success"],
    }
    etl, backup = runs["etl-nightly"][0], runs["backup-db"][0]
    assert etl.excerpt.endswith(
        "SimulatedFailure: load: the warehouse refused batch 7 (connection reset)\n"
    )
    assert etl.started_at is not None
    assert len(etl.trace_id) == 32
    assert backup.exit_code == 0
    assert "backup: 300 MB written" in backup.excerpt
    assert out.getvalue().count("demo job ") == 4
    # The simulated jobs' own metrics carry the demo's names, and only while it runs.
    assert sample("demo_job_runs_total", job="demo.etl-nightly", result="failure") == 2
    assert settings.OBSERVABILITY == before


def test_a_note_that_cannot_be_encoded_never_makes_the_job_fail(receiver):
    # A file name decoded with os.fsdecode holds a lone surrogate for an undecodable byte.
    @job_run("tests.odd-note", slug="payroll-export", ping_url=receiver.base)
    def export() -> str:
        note(os.fsdecode(b"report-\xff.csv"))
        return "done"

    assert export() == "done"
    start, finish = receiver.received
    assert start.path == f"/ping/{KEY}/payroll-export/start"
    assert finish.path == f"/ping/{KEY}/payroll-export"
    assert finish.body == b"report-\\udcff.csv\n"
