"""Batch job runs: one span, one count, one duration and a success timestamp each;
and, for a job that a control plane monitors, its start and finish reported to the
control plane's ping endpoint (Healthchecks' ping API, which it speaks).

    @job_run("payroll.export", slug="payroll-export")  # pings $CONTROLPLANE_PING_URL
    def export_payroll(): ...

    python -m observability.jobs run --job backup-db -- pg_dump -f /backups/db.sql

Reporting never decides how a job ends: a control plane that refuses, times out or
answers 5xx is retried briefly, then logged, and the job's own result, exception or
exit status stands.
"""

from __future__ import annotations

import argparse
import http.client
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from contextlib import ContextDecorator
from contextvars import ContextVar
from dataclasses import dataclass
from types import TracebackType
from typing import Any, BinaryIO
from urllib.parse import quote, urlsplit

from django.conf import settings
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode
from opentelemetry.util.types import AttributeValue

from observability import context, metrics, options
from observability.metrics import FAILURE, SUCCESS  # noqa: F401  (the result labels)
from observability.tracing import audit_attributes

# Named, not __name__: under `python -m observability.jobs` that is "__main__".
logger = logging.getLogger("observability.jobs")
_tracer = trace.get_tracer("observability")

# The base of a monitor's ping URLs, the control plane's URL and the ping key:
# https://controlplane.example/ping/<ping-key>. The job's slug is appended.
PING_URL_VARIABLE = "CONTROLPLANE_PING_URL"
# Seconds one ping may take. A ping comes before (start) and after (finish) the job's
# own work: a control plane that hangs must not hold the job up for long.
PING_TIMEOUT = 3.0
# Pauses before the second and third attempts: a ping is tried three times at most.
RETRY_PAUSES = (0.25, 1.0)
# The most of a run's output sent with its finish: its tail, as the end of a log says
# why it stopped. The control plane's limit, and Healthchecks' default; a smaller
# Ping-Body-Limit in the start's answer wins.
BODY_LIMIT = 10_000
USER_AGENT = "observability.jobs"

# Span attributes of a reported run.
JOB_SLUG = "app.job.slug"
RUN_ID = "app.job.run_id"
EXIT_CODE = "process.exit.code"

_current_run: ContextVar[JobRun | None] = ContextVar("observability_job_run", default=None)


def job_run(
    name: str,
    *,
    slug: str | None = None,
    ping_url: str | None = None,
    ping_timeout: float = PING_TIMEOUT,
    **attributes: AttributeValue,
) -> JobRun:
    """Measure one run of the job ``name`` (also the span name, e.g. "audit.retention.job").

    Usable as ``with job_run("etl.import") as span:`` or as a decorator, each call a
    run. A run that raises counts as a failure and the exception propagates unchanged.
    The metrics are ``job_runs_total`` and its siblings, prefixed with
    OBSERVABILITY["JOB_METRICS_NAMESPACE"] when the service sets one.

    With `slug`, the monitor's slug in the control plane, the run is also reported to
    ``{ping_url}/{slug}`` (`ping_url` defaults to $CONTROLPLANE_PING_URL, read at each
    run; neither set: nothing is reported): ``/start`` when it begins, then the bare URL
    on success, ``/fail`` on an exception, ``/<status>`` for an exit status (set on the
    run as ``exit_code``, or raised with ``sys.exit(status)``), each with
    ``?rid=<run id>`` and the ``traceparent`` of the job's span, the finish carrying
    the tail of what the run noted (``note()``) and of the exception's traceback.
    """
    if ping_url is not None and not slug:
        raise TypeError("job_run(): a ping_url needs the monitor's slug")
    return JobRun(name, attributes, slug=slug, ping_url=ping_url, ping_timeout=ping_timeout)


def current_run() -> JobRun | None:
    """The run in progress in this context (thread, task), if any."""
    return _current_run.get()


def note(text: str) -> None:
    """Add a line to the current run's output, whose tail its finish reports.

    Outside a run, nothing happens: a function can note what it did whether or not
    a job wraps it.
    """
    run = _current_run.get()
    if run is not None:
        run.note(text)


class JobRun(ContextDecorator):
    """One run of a job; see ``job_run()``.

    A class rather than a generator-based context manager: a run costs tens of
    microseconds, most of them the span (bench/observability_overhead.py).

    `exit_code`, set during the run, is its exit status (0 success, 1-255 failure),
    reported as ``/<status>``; ``run_id`` is the ``rid`` of a reported run.
    """

    def __init__(
        self,
        name: str,
        attributes: Mapping[str, AttributeValue],
        *,
        slug: str | None = None,
        ping_url: str | None = None,
        ping_timeout: float = PING_TIMEOUT,
        namespace: str | None = None,
    ) -> None:
        self.name = name
        self.attributes = attributes
        self.slug = slug
        self.ping_url = ping_url
        self.ping_timeout = ping_timeout
        # None: OBSERVABILITY["JOB_METRICS_NAMESPACE"], read at each run.
        self.namespace = namespace
        self.run_id: uuid.UUID | None = None
        self.exit_code: int | None = None
        self.output = OutputTail(BODY_LIMIT)

    def _recreate_cm(self) -> JobRun:
        # As a decorator, each call is a run of its own.
        return JobRun(
            self.name,
            self.attributes,
            slug=self.slug,
            ping_url=self.ping_url,
            ping_timeout=self.ping_timeout,
            namespace=self.namespace,
        )

    def note(self, text: str) -> None:
        """Add a line to the run's output (its tail goes with the finish). Never raises:
        what a job notes is reporting, and reporting never makes a job fail."""
        try:
            line = str(text)
            line = line if line.endswith("\n") else line + "\n"
            # A file name from os.fsdecode may hold lone surrogates: escaped, not an error.
            self.output.write(line.encode("utf-8", "backslashreplace"))
        except Exception:  # an odd object's __str__, a full buffer
            logger.warning("job %s: a note could not be kept", self.name, exc_info=True)

    def __enter__(self) -> trace.Span:
        # The namespace is looked up at every run, not at import: a module that
        # decorates its jobs may be imported before settings are ready, and an
        # overridden setting applies at once.
        namespace = self.namespace if self.namespace is not None else _metrics_namespace()
        self._instruments = metrics.job_instruments(namespace, self.name)
        self._span = _tracer.start_span(
            self.name,
            attributes={
                **audit_attributes(context.current()),
                "app.job": self.name,
                **self.attributes,
            },
            record_exception=False,
            set_status_on_exception=False,
        )
        self._token = otel_context.attach(trace.set_span_in_context(self._span))
        self._run_token = _current_run.set(self)
        self._endpoint = self._ping_endpoint()
        self._body_limit = BODY_LIMIT
        if self._endpoint is not None:
            self.run_id = uuid.uuid4()
            self._span.set_attributes({JOB_SLUG: self._endpoint.slug, RUN_ID: str(self.run_id)})
            limit = self._report("/start", b"")
            if limit is not None:
                self._body_limit = min(limit, BODY_LIMIT)
        # The job's own time, without its pings.
        self._started = time.perf_counter()
        return self._span

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback_: TracebackType | None,
    ) -> None:
        seconds = time.perf_counter() - self._started
        span = self._span
        raised = error is not None and not isinstance(error, SystemExit)
        # An exception wins over an exit status set before it; sys.exit() is one.
        status = None if raised else self.exit_code
        if isinstance(error, SystemExit):
            status = system_exit_status(error)
        if status is not None:
            status = exit_status(status)
        failed = raised or bool(status)
        try:
            if error is not None:
                span.record_exception(error)
            if status is not None:
                span.set_attribute(EXIT_CODE, status)
            if raised:
                span.set_status(Status(StatusCode.ERROR, f"{kind.__name__}: {error}"))
            elif status:
                span.set_status(Status(StatusCode.ERROR, f"exit status {status}"))
            # Read again: an organisation bound during the run belongs on its span.
            span.set_attributes(audit_attributes(context.current()))
            if self._endpoint is not None:
                body = finish_body(self.output.read(), error if failed else None, self._body_limit)
                self._report(finish_suffix(status, failed), body)
        finally:
            _current_run.reset(self._run_token)
            otel_context.detach(self._token)
            span.end()
            self._instruments.record(succeeded=not failed, seconds=seconds)

    def _ping_endpoint(self) -> PingEndpoint | None:
        if not self.slug:
            return None
        base = self.ping_url if self.ping_url is not None else os.environ.get(PING_URL_VARIABLE)
        if not base:
            return None
        return PingEndpoint(base, self.slug)

    def _report(self, suffix: str, body: bytes) -> int | None:
        """Send one ping; the body limit its answer announces, if any. Never raises."""
        endpoint, run_id = self._endpoint, self.run_id
        if endpoint is None or run_id is None:
            return None
        what = "start" if suffix == "/start" else f"finish ({_finish_name(suffix)})"
        try:
            headers = {"User-Agent": USER_AGENT, "Content-Type": "text/plain; charset=utf-8"}
            parent = traceparent(self._span.get_span_context())
            if parent:
                headers["traceparent"] = parent
            outcome = send_ping(endpoint.url(suffix, run_id), body, headers, self.ping_timeout)
        except Exception as error:  # a bad URL, anything: the job's result stands
            outcome = PingOutcome(problem=f"{type(error).__name__}: {error}", attempts=1)
        if outcome.problem:
            logger.warning(
                "job %s: its %s was not reported to the control plane at %s (%s, %d attempt%s); "
                "the job's own result stands",
                endpoint.slug,
                what,
                endpoint.origin,
                endpoint.redact(outcome.problem),
                outcome.attempts,
                "" if outcome.attempts == 1 else "s",
                extra={"job": endpoint.slug, "run_id": str(run_id), "ping": what},
            )
        return outcome.body_limit


def _finish_name(suffix: str) -> str:
    name = suffix.lstrip("/") or "success"
    return f"exit status {name}" if name.isdigit() else name


def _metrics_namespace() -> str:
    if not settings.configured and not os.environ.get("DJANGO_SETTINGS_MODULE"):
        # A script outside any Django project: the package's neutral names.
        return ""
    return options.job_metrics_namespace()


# --- Pure pieces: URLs, statuses, bodies, trace context --------------------------------


@dataclass(frozen=True)
class PingEndpoint:
    """A monitor's ping URLs: `base` is the control plane's ``.../ping/<ping-key>``."""

    base: str
    slug: str

    def url(self, suffix: str, run_id: uuid.UUID) -> str:
        """``{base}/{slug}{suffix}?rid={run_id}``; `suffix` "", "/start", "/fail", "/3"."""
        return f"{self.base.rstrip('/')}/{quote(self.slug, safe='')}{suffix}?rid={run_id}"

    def redact(self, text: str) -> str:
        """`text` (an error message quoting the URL) without the ping key."""
        secret = urlsplit(self.base).path.rstrip("/")
        return text.replace(secret, "/…") if secret.strip("/") else text

    @property
    def origin(self) -> str:
        """Scheme, host and port, for logs: the path holds the ping key, a secret."""
        parts = urlsplit(self.base)
        return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def finish_suffix(status: int | None, failed: bool) -> str:
    """The finish ping's path suffix: ``/<status>`` for an exit status, else ``/fail``
    or nothing (success)."""
    if status is not None:
        return f"/{status}"
    return "/fail" if failed else ""


def exit_status(code: int) -> int:
    """A process's exit status as a shell reports it, 0-255: Popen's -N (killed by
    signal N) is 128 + N; larger codes wrap as the operating system wraps them."""
    if code < 0:
        return min(128 - code, 255)
    return code & 0xFF


def system_exit_status(error: SystemExit) -> int:
    """The status ``sys.exit(x)`` ends a process with: None is 0, an int itself,
    anything else (a message) 1."""
    if error.code is None:
        return 0
    if isinstance(error.code, int):
        return error.code
    return 1


def tail_bytes(data: bytes, limit: int) -> bytes:
    """The last `limit` bytes of UTF-8 text, not starting inside a character."""
    if len(data) <= limit:
        return data
    tail = data[len(data) - limit :]
    # Continuation bytes (10xxxxxx) at the cut belong to a character cut in two.
    start = 0
    while start < min(3, len(tail)) and 0x80 <= tail[start] <= 0xBF:
        start += 1
    return tail[start:]


def finish_body(output: bytes, error: BaseException | None, limit: int) -> bytes:
    """What a finish ping carries: the run's output, then the traceback of the
    exception that ended it, cut to the last `limit` bytes."""
    if error is not None and not isinstance(error, SystemExit):
        if output and not output.endswith(b"\n"):
            output += b"\n"
        output += "".join(traceback.format_exception(error)).encode(errors="replace")
    return tail_bytes(output, limit)


def traceparent(span_context: trace.SpanContext) -> str | None:
    """The W3C ``traceparent`` header naming a span, or None for no span."""
    if not span_context.is_valid:
        return None
    return (
        f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-"
        f"{int(span_context.trace_flags):02x}"
    )


class OutputTail:
    """The last `limit` bytes written to it, from any thread."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._buffer = bytearray()
        self._lock = threading.Lock()

    def write(self, data: bytes) -> None:
        with self._lock:
            self._buffer += data
            # Trimmed now and then rather than at every write, and to a few bytes more
            # than the limit, so that read() still sees where a character was cut.
            if len(self._buffer) > 2 * self.limit:
                del self._buffer[: len(self._buffer) - self.limit - 4]

    def read(self) -> bytes:
        with self._lock:
            return tail_bytes(bytes(self._buffer), self.limit)


# --- Sending a ping ---------------------------------------------------------------------


@dataclass(frozen=True)
class PingOutcome:
    problem: str = ""  # empty: the control plane took the ping
    attempts: int = 0
    body_limit: int | None = None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirected POST loses its body (or is refused): a ping URL that redirects
    # (http to https, a moved host) is a setting to fix, said in the log.
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def send_ping(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> PingOutcome:
    """POST one ping, retried on a refused or lost connection, a timeout, 429 and 5xx.

    urllib rather than requests: no client span for the ping (the ping names the
    job's span itself) and no instrumentation to write the secret URL anywhere.
    """
    if urlsplit(url).scheme not in ("http", "https"):
        return PingOutcome(problem="the ping URL is not an http:// or https:// URL")
    attempts = len(RETRY_PAUSES) + 1
    problem = ""
    for attempt in range(1, attempts + 1):
        # The scheme is checked above: no file:// or custom handler is ever opened.
        request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")  # noqa: S310
        answered = _post(request, timeout)
        if isinstance(answered, str):
            problem = answered
        elif 200 <= answered.status < 300:
            return PingOutcome(attempts=attempt, body_limit=_body_limit(answered.headers))
        else:
            problem = answered.problem()
            if not (answered.status >= 500 or answered.status in (408, 429)):
                return PingOutcome(problem=problem, attempts=attempt)
        if attempt < attempts:
            time.sleep(RETRY_PAUSES[attempt - 1])
    return PingOutcome(problem=problem, attempts=attempts)


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: Mapping[str, str]
    text: bytes

    def problem(self) -> str:
        said = f"HTTP {self.status}"
        if 300 <= self.status < 400:
            said += f" redirecting to {self.headers.get('Location', '?')}"
        text = self.text.decode(errors="replace").strip()
        return f"{said}: {text[:200]}" if text else said


def _post(request: urllib.request.Request, timeout: float) -> _Answer | str:
    """The control plane's answer, or what kept it from answering."""
    try:
        with _opener.open(request, timeout=timeout) as response:
            return _Answer(response.status, response.headers, response.read(500))
    except urllib.error.HTTPError as error:
        with error:
            return _Answer(error.code, error.headers, error.read(500))
    except urllib.error.URLError as error:
        return _describe(error.reason)
    except (OSError, http.client.HTTPException) as error:
        return _describe(error)


def _describe(reason: object) -> str:
    if isinstance(reason, BaseException):
        return f"{type(reason).__name__}: {reason}" if str(reason) else type(reason).__name__
    return str(reason)


def _body_limit(headers: Mapping[str, str]) -> int | None:
    value = headers.get("Ping-Body-Limit", "")
    return int(value) if value.isdigit() and int(value) > 0 else None


# --- The command line -------------------------------------------------------------------

# What a shell answers for a command it cannot find, or cannot execute.
NOT_FOUND, NOT_EXECUTABLE = 127, 126


def run_command(
    command: Sequence[str],
    *,
    slug: str,
    ping_url: str | None = None,
    name: str | None = None,
    ping_timeout: float = PING_TIMEOUT,
    namespace: str | None = None,
    stdout: BinaryIO | None = None,
    stderr: BinaryIO | None = None,
) -> int:
    """Run `command` as the job `slug`: its output streamed through (and its tail kept),
    its start and finish with its exit status reported; its exit status returned."""
    out = stdout if stdout is not None else sys.stdout.buffer
    err = stderr if stderr is not None else sys.stderr.buffer
    run = JobRun(
        name or slug,
        {"process.executable.name": os.path.basename(command[0])},
        slug=slug,
        ping_url=ping_url,
        ping_timeout=ping_timeout,
        namespace=namespace,
    )
    # Signals first: one sent while the start is reported still reaches the command.
    with _SignalForwarding() as forwarding, run:
        try:
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as error:
            run.exit_code = NOT_FOUND if isinstance(error, FileNotFoundError) else NOT_EXECUTABLE
            message = f"{command[0]}: {error.strerror or error}\n".encode()
            _copy_chunk(message, err, run.output)
        else:
            forwarding.attach(process)
            run.exit_code = exit_status(_wait_streaming(process, out, err, run.output))
    return run.exit_code


def _wait_streaming(
    process: subprocess.Popen[bytes], out: BinaryIO, err: BinaryIO, tail: OutputTail
) -> int:
    copiers = [
        threading.Thread(target=_copy, args=(pipe, stream, tail), daemon=True)
        for pipe, stream in ((process.stdout, out), (process.stderr, err))
        if pipe is not None
    ]
    for copier in copiers:
        copier.start()
    code = process.wait()
    for copier in copiers:
        copier.join()
    return code


def _copy(pipe: BinaryIO, stream: BinaryIO, tail: OutputTail) -> None:
    with pipe:
        # os.read returns what is there: output goes through as the command writes it.
        while chunk := os.read(pipe.fileno(), 65536):
            _copy_chunk(chunk, stream, tail)


def _copy_chunk(chunk: bytes, stream: BinaryIO, tail: OutputTail) -> None:
    tail.write(chunk)
    try:
        stream.write(chunk)
        stream.flush()
    except (OSError, ValueError):
        pass  # our own output is gone (a closed pipe): the command runs on, the tail is kept


# Sent to the wrapper, these go to the command, which decides how to end. SIGINT is
# ignored instead: a terminal's Ctrl-C reaches the command (in the same process group)
# already, and the wrapper must live to report how it ended.
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class _SignalForwarding:
    """While the wrapper runs: FORWARDED_SIGNALS go to the command (or wait for it to
    start), SIGINT is ignored. Only in the main thread, where handlers belong."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.pending: list[int] = []
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> _SignalForwarding:
        if threading.current_thread() is threading.main_thread():
            for number in FORWARDED_SIGNALS:
                self.previous[number] = signal.signal(number, self._forward)
            self.previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.SIG_IGN)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for number, handler in self.previous.items():
            signal.signal(number, handler)

    def attach(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        for number in self.pending:
            process.send_signal(number)

    def _forward(self, number: int, frame: object) -> None:
        if self.process is None:
            self.pending.append(number)
        elif self.process.poll() is None:
            self.process.send_signal(number)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m observability.jobs run --job SLUG [--ping-url BASE] -- CMD ARGS...``"""
    arguments = list(sys.argv[1:] if argv is None else argv)
    command: list[str] = []
    if "--" in arguments:
        split = arguments.index("--")
        arguments, command = arguments[:split], arguments[split + 1 :]
    parser = argparse.ArgumentParser(
        prog="python -m observability.jobs",
        description="Run a command as a monitored job: a span, the job metrics, and its "
        "start and finish (exit status, output's tail) reported to the control plane.",
    )
    actions = parser.add_subparsers(dest="action", required=True)
    run = actions.add_parser(
        "run",
        help="run a command as the job SLUG and exit with its exit status",
        usage="python -m observability.jobs run --job SLUG [--ping-url BASE] -- CMD [ARGS...]",
    )
    run.add_argument("--job", required=True, metavar="SLUG", help="the monitor's slug")
    run.add_argument(
        "--ping-url",
        metavar="BASE",
        help=f"https://<control plane>/ping/<ping key> (default: ${PING_URL_VARIABLE}; "
        "neither: the run is not reported)",
    )
    run.add_argument("--name", help="the span's and the metrics' job name (default: the slug)")
    run.add_argument(
        "--timeout",
        type=float,
        default=PING_TIMEOUT,
        help=f"seconds each ping may take (default {PING_TIMEOUT:g}; tried 3 times at most)",
    )
    parsed = parser.parse_args(arguments)
    if not command:
        run.error("put the command to run after --, e.g. -- /usr/local/bin/backup.sh")
    _configure_command_line()
    return run_command(
        command,
        slug=parsed.job,
        ping_url=parsed.ping_url,
        name=parsed.name,
        ping_timeout=parsed.timeout,
        namespace=_command_line_namespace(),
    )


def _configure_command_line() -> None:
    """Logs to stderr and a tracer provider, unless the process has them already."""
    if not logging.getLogger().handlers:
        logging.basicConfig(
            stream=sys.stderr, level=logging.INFO, format="%(name)s: %(levelname)s: %(message)s"
        )
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider

    from observability import tracing

    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return
    # A provider of its own rather than tracing.configure(): the wrapper calls no
    # library worth instrumenting, and importing them (psycopg, Celery) would add half
    # a second to every cron line. The standard variables, as for any OpenTelemetry
    # program; spans left are exported when the process exits.
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME") or "job"})
    )
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if endpoint:
        provider.add_span_processor(tracing.otlp_processor(endpoint))
    trace.set_tracer_provider(provider)


def _command_line_namespace() -> str:
    try:
        return _metrics_namespace()
    except Exception as error:  # the job runs whatever the project's settings say
        logger.warning("job metrics keep the package's own names: %s", error)
        return ""


if __name__ == "__main__":
    sys.exit(main())
