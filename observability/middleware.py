"""Request ids, the server span and the request duration metric for every request."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.http import HttpRequest, HttpResponseBase
from django.utils.functional import LazyObject, empty
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue
from prometheus_client import Histogram, values

from observability import context, metrics, options, tracing
from observability.context import AuditContext
from observability.logging import LOG_IDS_ATTRIBUTE, RequestLogIds
from observability.routes import route_template

SPAN_NAME = "http.request"
TRACE_ID_HEADER = "X-Trace-Id"
# The route label of requests no URL pattern matched (404s, mostly): one series
# for all of them, whatever the path.
UNMATCHED_ROUTE = "<unmatched>"
# Methods outside this set share one label value, so junk methods cannot add series.
KNOWN_METHODS = frozenset(
    {"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"}
)
OTHER_METHOD = "_OTHER"

_propagator = TraceContextTextMapPropagator()
_tracer = trace.get_tracer("observability")
# The parent of a request that sent no traceparent: none, whatever the ambient context.
_NO_PARENT = Context()
# The WSGI environ keys of the W3C Trace Context headers.
_TRACE_HEADERS = (("traceparent", "HTTP_TRACEPARENT"), ("tracestate", "HTTP_TRACESTATE"))
# Exemplars live beside each value in memory (MutexValue). Under PROMETHEUS_MULTIPROC_DIR
# (decided when prometheus_client is imported) values live in mmap'd files that have no
# room for them and drop them, so the middleware does not build them at all.
EXEMPLARS = values.ValueClass is values.MutexValue


class ObservabilityMiddleware:
    """Put it first in MIDDLEWARE, so its span and headers cover the whole chain.

    With OBSERVABILITY["ENABLED"] False it removes itself from the chain.

    Every request pays for what runs here, so the work is arranged to cost little
    (bench/observability_overhead.py measures it): headers are read from the WSGI
    environ rather than through ``request.headers``, which parses every header; the
    span and the contexts are entered and left by hand rather than through context
    managers; a request's attributes are set in one call; the histogram's labelled
    children are kept per label set; and the ids that log lines about a finished
    request need are formatted only when such a line is written.
    """

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.options = options.load()
        if not self.options.enabled:
            raise MiddlewareNotUsed("OBSERVABILITY['ENABLED'] is False")
        tracing.configure(
            self.options.service_name, self.options.otlp_endpoint, self.options.log_spans
        )
        self.get_response = get_response
        self._request_id_key = "HTTP_" + self.options.request_id_header.upper().replace("-", "_")
        # How logs and spans name the signed-in user (OBSERVABILITY["USER_ID"]).
        self._identify = options.user_identifier(self.options.user_id)
        self._durations: dict[tuple[str, str, str], Histogram] = {}

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        started = time.perf_counter()
        meta = request.META
        incoming = meta.get(self._request_id_key)
        request_id = incoming if context.valid_request_id(incoming) else context.new_request_id()
        method = request.method if request.method in KNOWN_METHODS else OTHER_METHOD
        attributes: dict[str, AttributeValue] = {
            "http.request.method": method,
            tracing.REQUEST_ID: request_id,
        }
        if method == OTHER_METHOD:
            attributes["http.request.method_original"] = str(request.method)[:32]
        # A malformed or absent traceparent means a new trace. A valid one is continued,
        # as W3C Trace Context asks, and the span and the request's log lines say so:
        # its trace id was chosen by the caller.
        parent, remote = _parent(meta)
        if remote:
            attributes[tracing.PARENT_REMOTE] = True

        span = _tracer.start_span(
            SPAN_NAME,
            context=parent,
            kind=SpanKind.SERVER,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        )
        span_token = otel_context.attach(trace.set_span_in_context(span, parent))
        audit_token = context.begin(AuditContext(request_id=request_id))
        remote_token = tracing.mark_remote() if remote else None
        try:
            response = self.get_response(request)
        except Exception as error:
            # Only reaches here when Django is told to propagate exceptions.
            span.record_exception(error)
            self._finish(request, span, method, 500, started, remote)
            raise
        else:
            self._finish(request, span, method, response.status_code, started, remote)
        finally:
            if remote_token is not None:
                tracing.unmark_remote(remote_token)
            context.end(audit_token)
            otel_context.detach(span_token)
            span.end()

        response[self.options.request_id_header] = request_id
        trace_id = getattr(request, LOG_IDS_ATTRIBUTE).trace_id
        if trace_id is not None:
            response[TRACE_ID_HEADER] = trace_id
        return response

    def process_view(
        self,
        request: HttpRequest,
        view_func: Callable[..., HttpResponseBase],
        view_args: tuple,
        view_kwargs: dict,
    ) -> None:
        # Session users are known before the view runs, so its log lines carry the id.
        # Token-authenticated API users are bound by the authentication class, or
        # at the latest picked up in _finish.
        user_id = authenticated_user_id(request, self._identify)
        if user_id is not None:
            context.bind(user_id=user_id)

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        # Django turns the exception into a 500 response after this; keep the
        # traceback on the span, where the response no longer has it.
        trace.get_current_span().record_exception(exception)

    def _finish(
        self,
        request: HttpRequest,
        span: trace.Span,
        method: str,
        status: int,
        started: float,
        remote: bool,
    ) -> None:
        match = getattr(request, "resolver_match", None)
        route = route_template(match.route or "") if match is not None else UNMATCHED_ROUTE
        user_id = authenticated_user_id(request, self._identify)
        audit = context.current()
        if user_id is not None and user_id != audit.user_id:
            audit = context.bind(user_id=user_id)

        # The request id went on at the start; the view may have bound the others.
        attributes: dict[str, AttributeValue] = {
            "http.route": route,
            "http.response.status_code": status,
        }
        if audit.user_id is not None:
            attributes[tracing.USER_ID] = audit.user_id
        if audit.organization_id is not None:
            attributes[tracing.ORGANIZATION_ID] = audit.organization_id
        span.set_attributes(attributes)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))

        # Django logs error responses it has not logged yet ("Forbidden: /x") after
        # the whole middleware chain has returned, outside this span and scope; the
        # formatter finds the ids on the request the log record carries.
        span_context = span.get_span_context()
        valid = span_context.is_valid
        trace_id = format(span_context.trace_id, "032x") if valid else None
        setattr(
            request,
            LOG_IDS_ATTRIBUTE,
            RequestLogIds(trace_id, span_context.span_id if valid else None, audit, remote),
        )

        labels = (method, route, str(status))
        duration = self._durations.get(labels)
        if duration is None:
            # Label values are bounded (methods, routes, status codes), so is this.
            duration = self._durations[labels] = (
                metrics.http_server_request_duration_seconds.labels(*labels)
            )
        # The exemplar links the observation's bucket to this trace (OpenMetrics only);
        # a trace the sampler dropped would be a link to nothing.
        if EXEMPLARS and trace_id is not None and span_context.trace_flags.sampled:
            duration.observe(time.perf_counter() - started, {"trace_id": trace_id})
        else:
            duration.observe(time.perf_counter() - started)


def _parent(meta: dict) -> tuple[Context, bool]:
    """The context a request's span continues, and whether it names a caller's span."""
    if "HTTP_TRACEPARENT" not in meta:
        return _NO_PARENT, False
    carrier = {name: meta[key] for name, key in _TRACE_HEADERS if key in meta}
    parent = _propagator.extract(carrier, context=Context())
    return parent, tracing.remote_parent(trace.get_current_span(parent).get_span_context())


def authenticated_user_id(
    request: HttpRequest, identify: Callable[[Any], str | None] = options.primary_key
) -> str | None:
    """The signed-in user as `identify` names them (by default their primary key), or None.

    AuthenticationMiddleware's lazy user is left alone when no session cookie was
    sent: resolving it then could only find an anonymous user, and would mark the
    session accessed (adding ``Vary: Cookie`` to the response).
    """
    user = getattr(request, "user", None)
    if user is None:
        return None
    if isinstance(user, LazyObject) and user._wrapped is empty:
        if settings.SESSION_COOKIE_NAME not in request.COOKIES:
            return None
    if getattr(user, "is_authenticated", False):
        identity = identify(user)
        return None if identity is None else str(identity)
    return None
