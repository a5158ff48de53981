"""JSON log lines that carry the trace and audit ids, and no personal data."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime

from observability import context, tracing
from observability.context import AuditContext

# Attributes every LogRecord has; anything else on a record came from `extra`.
_RECORD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}

# Extras we never write. `request` is added by django.request and django.server and
# would drag in the user's address and cookies; users appear in logs by id only.
PERSONAL_EXTRAS = frozenset(
    {
        "request",
        "user",
        "email",
        "username",
        "first_name",
        "last_name",
        "full_name",
        "ip",
        "ip_address",
        "remote_addr",
        "client_ip",
    }
)

# Database errors quote the offending row ("Key (email)=(a@b.example) already
# exists"), so addresses can reach a log line through a message or a traceback.
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
REDACTED_EMAIL = "<email>"

_IDS = ("trace_id", "span_id", "request_id", "user_id", "organization_id")

# Where ObservabilityMiddleware leaves a finished request's ids, for log records
# about that request written after it left the middleware.
LOG_IDS_ATTRIBUTE = "observability_log_ids"


class RequestLogIds:
    """The ids of a finished request, for log lines written about it afterwards.

    Made on every request and read on the few that log after the middleware, so
    the span id is formatted only when a line asks for it.
    """

    __slots__ = ("_audit", "_remote", "_span_id", "trace_id")

    def __init__(
        self, trace_id: str | None, span_id: int | None, audit: AuditContext, remote: bool
    ) -> None:
        self.trace_id = trace_id
        self._span_id = span_id
        self._audit = audit
        self._remote = remote

    def get(self, key: str) -> str | None:
        if key == "trace_id":
            return self.trace_id
        if key == "span_id":
            return None if self._span_id is None else format(self._span_id, "016x")
        if key == tracing.TRACE_PARENT_LOG_FIELD:
            return tracing.REMOTE if self._remote else None
        return getattr(self._audit, key, None) if key in context.FIELDS else None


def redact(text: str) -> str:
    return _EMAIL.sub(REDACTED_EMAIL, text)


class JsonFormatter(logging.Formatter):
    """One JSON object per line.

    The ids come from the record when the caller passed them (the span exporter
    does), then from the request the record is about once that request has left
    the middleware, otherwise from the current span and audit context.
    """

    def format(self, record: logging.LogRecord) -> str:
        current = getattr(record.__dict__.get("request"), LOG_IDS_ATTRIBUTE, None)
        if current is None:
            audit = context.current()
            current = {
                "trace_id": tracing.current_trace_id(),
                "span_id": tracing.current_span_id(),
                "request_id": audit.request_id,
                "user_id": audit.user_id,
                "organization_id": audit.organization_id,
                tracing.TRACE_PARENT_LOG_FIELD: tracing.REMOTE
                if tracing.parent_is_remote()
                else None,
            }
        line: dict[str, object] = {
            "timestamp": _rfc3339(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for key in _IDS:
            line[key] = record.__dict__.get(key, current.get(key))
        # Only on lines of a request that continued its caller's trace: "remote".
        trace_parent = record.__dict__.get(
            tracing.TRACE_PARENT_LOG_FIELD, current.get(tracing.TRACE_PARENT_LOG_FIELD)
        )
        if trace_parent:
            line[tracing.TRACE_PARENT_LOG_FIELD] = trace_parent
        if record.exc_info:
            line["exception"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            line["exception"] = redact(record.exc_text)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        for key, value in record.__dict__.items():
            if key in line or key in _RECORD_ATTRIBUTES or key in PERSONAL_EXTRAS:
                continue
            if key.startswith("_") or not _serialisable(value):
                continue
            line[key] = value
        return json.dumps(line, ensure_ascii=False)


def _rfc3339(created: float) -> str:
    moment = datetime.fromtimestamp(created, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _serialisable(value: object) -> bool:
    # Objects that are not plain data are dropped rather than repr()'d: a repr is
    # where a user's name or address would sneak in.
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True
