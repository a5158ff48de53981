"""Audit ids travel with Celery tasks, from the code that queues a task to the worker.

OpenTelemetry's Celery instrumentation carries the trace (``traceparent``) in the
task headers; these handlers carry the request, user and organisation ids next to
it, under one header, so the task's logs and spans line up with the request's.

`register_queue_length(app)` exports `celery_queue_length{queue}`, read from the
broker at scrape time.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, suppress
from typing import Any

from opentelemetry import trace
from prometheus_client.core import GaugeMetricFamily

from observability import context, metrics, tracing

HEADER = "audit_context"

# task id -> the scope to leave when the task ends. A worker process runs one
# task at a time per thread; the map only outlives a task whose postrun never came.
_scopes: dict[str, ExitStack] = {}


def connect_signals() -> bool:
    """Connect the handlers (once, however often it is called); False without Celery."""
    try:
        from celery import signals
    except ImportError:
        return False
    signals.before_task_publish.connect(
        copy_context_to_headers, weak=False, dispatch_uid="observability.copy_context"
    )
    signals.task_prerun.connect(
        bind_context_from_headers, weak=False, dispatch_uid="observability.bind_context"
    )
    signals.task_postrun.connect(
        restore_context, weak=False, dispatch_uid="observability.restore_context"
    )
    signals.worker_process_shutdown.connect(
        forget_dead_process, weak=False, dispatch_uid="observability.forget_dead_process"
    )
    return True


def copy_context_to_headers(headers: dict[str, Any] | None = None, **_: Any) -> None:
    """before_task_publish: write the current ids into the message headers."""
    if headers is not None:
        headers[HEADER] = context.current().as_dict()


def bind_context_from_headers(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    """task_prerun: run the task with the ids of whoever queued it.

    A task without the header (queued by a producer without these handlers, or run
    eagerly in the caller's thread) keeps the context it already has.
    """
    carried = getattr(getattr(task, "request", None), HEADER, None)
    if task_id is None or not isinstance(carried, dict):
        return
    ids = {name: _clean(name, carried.get(name)) for name in context.FIELDS}
    stack = ExitStack()
    stack.enter_context(context.scope(**ids))
    _scopes[task_id] = stack

    # The Celery instrumentation's task span is current by now (its handler was
    # connected first); tag it like any other span of ours.
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes(tracing.audit_attributes(context.current()))


def restore_context(task_id: str | None = None, **_: Any) -> None:
    """task_postrun: give the worker back the context it had before the task."""
    stack = _scopes.pop(task_id, None) if task_id is not None else None
    if stack is None:
        return
    try:
        stack.close()
    except ValueError:
        # Entered in another context (a pool that switched threads): start clean.
        context.clear()


def forget_dead_process(pid: int | None = None, **_: Any) -> None:
    """worker_process_shutdown: the prefork child's `live*` gauges leave with it,
    as gunicorn workers' do through observability.gunicorn.child_exit.
    """
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid or os.getpid())


def _clean(name: str, value: object) -> str | None:
    # Headers come off the wire; take only what we would have written ourselves.
    if not isinstance(value, str) or not value or len(value) > context.MAX_REQUEST_ID_LENGTH:
        return None
    if name == "request_id" and not context.valid_request_id(value):
        return None
    return value


# --- celery_queue_length ---------------------------------------------------------------

QUEUE_LENGTH = "celery_queue_length"
QUEUE_LENGTH_HELP = (
    "Messages waiting in each Celery queue, read from the broker when /metrics is scraped "
    "(no series when the broker cannot be read)."
)
# A scrape waits this long at most for the broker (connecting, then each answer).
QUEUE_LENGTH_TIMEOUT = 1.0

queue_log = logging.getLogger("observability.celery")


def app_queues(app: Any) -> list[str]:
    """The queues an app's tasks go to: its default queue, the queues it declares
    (`task_queues`) and those its `task_routes` mapping names, each once, in that order."""
    conf = app.conf
    names = [conf.task_default_queue]
    names += [queue.name for queue in conf.task_queues or ()]
    routes = conf.task_routes
    for route in routes.values() if isinstance(routes, dict) else ():
        queue = route.get("queue") if isinstance(route, dict) else None
        names.append(getattr(queue, "name", queue))
    return list(dict.fromkeys(name for name in names if isinstance(name, str) and name))


class QueueLengthCollector:
    """`celery_queue_length{queue}`: each queue's message count, asked of the broker at
    scrape time with a passive `queue_declare` (Redis, RabbitMQ and kombu's virtual
    transports all answer it).

    - A queue the broker does not know (Redis drops an empty list; RabbitMQ before a
      worker declared it) has no message waiting: 0.
    - A broker that cannot be read (down, refusing, slower than `timeout`): no series at
      all, rather than a stale or made-up count, and one warning saying why; further
      failures are logged at debug until a scrape succeeds again (then one info line).
    - `memory://` keeps its queues in each process: the count is the scraped process's
      own, which is all such a broker has.

    `queues` None reads the app's own (`app_queues`) at each scrape, so settings are not
    touched when the collector is made.
    """

    def __init__(
        self,
        app: Any,
        queues: Iterable[str] | None = None,
        timeout: float = QUEUE_LENGTH_TIMEOUT,
    ) -> None:
        self.app = app
        self.queues = None if queues is None else list(queues)
        self.timeout = timeout
        self._failing = False

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Registering calls this; without it the registry would collect, at import.
        yield GaugeMetricFamily(QUEUE_LENGTH, QUEUE_LENGTH_HELP, labels=["queue"])

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(QUEUE_LENGTH, QUEUE_LENGTH_HELP, labels=["queue"])
        try:
            counts = self.read()
        except Exception as error:  # a collector that raises fails the whole scrape
            self._note_failure(error)
        else:
            self._note_success()
            for queue, count in counts.items():
                family.add_metric([queue], count)
        yield family

    def read(self) -> dict[str, int]:
        """Each queue's message count; raises when the broker cannot be read."""
        names = self.queues if self.queues is not None else app_queues(self.app)
        with self.app.connection_for_read(connect_timeout=self.timeout) as connection:
            # Options by transport: redis-py and py-amqp refuse each other's.
            timeouts = _TIMEOUT_OPTIONS.get(connection.transport.driver_type)
            if timeouts is not None:
                connection.transport_options.update(timeouts(self.timeout))
            return {name: _message_count(connection, name) for name in names}

    def _note_failure(self, error: Exception) -> None:
        level = logging.DEBUG if self._failing else logging.WARNING
        self._failing = True
        queue_log.log(
            level,
            "%s: cannot read the broker (%s: %s); no series until it answers"
            " (later failures are logged at debug)",
            QUEUE_LENGTH,
            type(error).__name__,
            error,
        )

    def _note_success(self) -> None:
        if self._failing:
            self._failing = False
            queue_log.info("%s: the broker answers again", QUEUE_LENGTH)


_TIMEOUT_OPTIONS: dict[str, Callable[[float], dict[str, float]]] = {
    "redis": lambda seconds: {"socket_timeout": seconds, "socket_connect_timeout": seconds},
    "amqp": lambda seconds: {"read_timeout": seconds, "write_timeout": seconds},
}


def _message_count(connection: Any, queue: str) -> int:
    # A channel per queue: RabbitMQ closes the channel that asked for an unknown queue.
    channel = connection.channel()
    try:
        return int(channel.queue_declare(queue=queue, passive=True).message_count)
    except connection.channel_errors as error:
        if "NOT_FOUND" in str(error):
            return 0
        raise
    finally:
        # RabbitMQ has closed it already after a NOT_FOUND.
        with suppress(*connection.connection_errors, *connection.channel_errors):
            channel.close()


def register_queue_length(
    app: Any, queues: Iterable[str] | None = None, timeout: float = QUEUE_LENGTH_TIMEOUT
) -> QueueLengthCollector:
    """Export `celery_queue_length` for `app` on this process's /metrics (under
    PROMETHEUS_MULTIPROC_DIR too: the web process asks the broker itself). Registering
    again replaces the previous collector."""
    collector = QueueLengthCollector(app, queues, timeout)
    metrics.register_live_collector(QUEUE_LENGTH, collector)
    return collector
