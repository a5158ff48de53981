"""Request ids, the server span and the request duration metric for every request."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.http import HttpRequest, HttpResponseBase
from django.utils.functional import LazyObject, empty
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from observability import context, metrics, options, tracing
from observability.logging import LOG_IDS_ATTRIBUTE
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


class ObservabilityMiddleware:
    """Put it first in MIDDLEWARE, so its span and headers cover the whole chain.

    With OBSERVABILITY["ENABLED"] False it removes itself from the chain.
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

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        started = time.perf_counter()
        request_id = self._request_id(request)
        method = request.method if request.method in KNOWN_METHODS else OTHER_METHOD
        # A malformed or absent traceparent extracts to an empty context: a new trace.
        # A valid one is continued, as W3C Trace Context asks, and the span and the
        # request's log lines say so: its trace id was chosen by the caller.
        parent = _propagator.extract(request.headers, context=Context())
        remote = tracing.remote_parent(trace.get_current_span(parent).get_span_context())
        attributes = {"http.request.method": method, tracing.REQUEST_ID: request_id}
        if remote:
            attributes[tracing.PARENT_REMOTE] = True
        if method == OTHER_METHOD:
            attributes["http.request.method_original"] = str(request.method)[:32]

        with (
            context.scope(request_id=request_id, user_id=None, organization_id=None),
            tracing.continuing_remote_trace(remote),
            _tracer.start_as_current_span(
                SPAN_NAME, context=parent, kind=SpanKind.SERVER, attributes=attributes
            ) as span,
        ):
            try:
                response = self.get_response(request)
            except Exception:
                # Only reaches here when Django is told to propagate exceptions.
                self._finish(request, span, method, 500, started)
                raise
            self._finish(request, span, method, response.status_code, started)

        response[self.options.request_id_header] = request_id
        trace_id = getattr(request, LOG_IDS_ATTRIBUTE)["trace_id"]
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
        user_id = authenticated_user_id(request)
        if user_id is not None:
            context.bind(user_id=user_id)

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        # Django turns the exception into a 500 response after this; keep the
        # traceback on the span, where the response no longer has it.
        trace.get_current_span().record_exception(exception)

    def _request_id(self, request: HttpRequest) -> str:
        incoming = request.headers.get(self.options.request_id_header)
        return incoming if context.valid_request_id(incoming) else context.new_request_id()

    def _finish(
        self,
        request: HttpRequest,
        span: trace.Span,
        method: str,
        status: int,
        started: float,
    ) -> None:
        match = getattr(request, "resolver_match", None)
        route = route_template(match.route or "") if match is not None else UNMATCHED_ROUTE
        user_id = authenticated_user_id(request)
        if user_id is not None:
            context.bind(user_id=user_id)

        audit = context.current()
        span.set_attribute("http.route", route)
        span.set_attribute("http.response.status_code", status)
        span.set_attributes(tracing.audit_attributes(audit))
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))

        # Django logs error responses it has not logged yet ("Forbidden: /x") after
        # the whole middleware chain has returned, outside this span and scope; the
        # formatter finds the ids on the request the log record carries.
        span_context = span.get_span_context()
        ids = {"trace_id": None, "span_id": None, **audit.as_dict()}
        if tracing.parent_is_remote():
            ids[tracing.TRACE_PARENT_LOG_FIELD] = tracing.REMOTE
        if span_context.is_valid:
            ids["trace_id"] = format(span_context.trace_id, "032x")
            ids["span_id"] = format(span_context.span_id, "016x")
        setattr(request, LOG_IDS_ATTRIBUTE, ids)

        metrics.http_server_request_duration_seconds.labels(
            http_request_method=method,
            http_route=route,
            http_response_status_code=str(status),
        ).observe(time.perf_counter() - started)


def authenticated_user_id(request: HttpRequest) -> str | None:
    """The primary key of the signed-in user as a string, or None.

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
        return str(user.pk)
    return None
