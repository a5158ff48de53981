"""A client for the Prometheus HTTP query API (also spoken by Thanos and Mimir).

Every failure surfaces as a `SourceError` subclass with a message fit for an
admin page: callers never see `requests`, `KeyError` or `ValueError` from here.

Requests go through the outbound guard (`catalog.outbound`, policy SOURCES). A
source URL may be aimed at any service of the network, so a message says what kind
of failure happened and never repeats what the other side said; the one exception
is a PromQL parse error (`bad_data`), which is what a manager needs to fix a rule.
"""

import json
import logging
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from controlplane.catalog import outbound

logger = logging.getLogger(__name__)


class SourceError(Exception):
    """The source could not answer the query."""

    # For logs and metrics: what kind of failure, in one word.
    kind = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadQuery(SourceError):
    """The expression is not valid PromQL, or not usable as a condition."""

    kind = "bad_query"


class QueryFailed(SourceError):
    """The expression parsed but its evaluation failed (Prometheus `execution`)."""

    kind = "query_failed"


class SourceUnavailable(SourceError):
    """The source is down, unreachable, or answered something we cannot read."""

    kind = "unavailable"


class SourceTimeout(SourceError):
    """The source did not answer in time."""

    kind = "timeout"


class Labels(Mapping[str, str]):
    """An immutable, hashable label set."""

    __slots__ = ("_dict", "_pairs")

    def __init__(self, labels: Mapping[str, str] | None = None) -> None:
        self._dict = dict(labels or {})
        self._pairs = tuple(sorted(self._dict.items()))

    def __getitem__(self, name: str) -> str:
        return self._dict[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict)

    def __len__(self) -> int:
        return len(self._dict)

    def __hash__(self) -> int:
        return hash(self._pairs)

    def __repr__(self) -> str:
        return f"Labels({self._dict!r})"


@dataclass(frozen=True)
class Sample:
    """One series of an instant vector (or a scalar, with no labels)."""

    labels: Labels
    value: float
    timestamp: float


@dataclass(frozen=True)
class Series:
    """One series of a range query: (unix seconds, value) points in time order."""

    labels: Labels
    points: tuple[tuple[float, float], ...]


Instant = datetime | float

# Prometheus reports these error types; anything else is the source's problem.
_ERROR_TYPES: dict[str, type[SourceError]] = {
    "bad_data": BadQuery,
    "execution": QueryFailed,
    "timeout": SourceTimeout,
}
# Every errorType Prometheus documents: the only ones a message names. Any other is
# text of the other side's choosing, and is called "unknown".
_KNOWN_ERROR_TYPES = frozenset(
    {
        "bad_data",
        "execution",
        "timeout",
        "canceled",
        "internal",
        "unavailable",
        "not_found",
        "not_acceptable",
    }
)
_RESULT_TYPES = frozenset({"vector", "matrix", "scalar", "string"})
# A parse error is a line or two; anything longer is not one worth showing whole.
_MAX_PARSE_ERROR = 500
_MAX_WARNING = 200
_MAX_WARNINGS_LOGGED = 5
# Content types a message may name, which say what answered (a web page, a file) without
# relaying a header the other side chose.
_NAMED_CONTENT_TYPES = frozenset(
    {
        "application/json",
        "application/octet-stream",
        "application/xml",
        "text/html",
        "text/plain",
        "text/xml",
    }
)


class PrometheusClient:
    def __init__(
        self,
        base_url: str,
        timeout: float = 10,
        headers: Mapping[str, str] | None = None,
        guard: outbound.Outbound | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.headers = dict(headers or {})
        self.guard = guard or outbound.Outbound(outbound.SOURCES)
        self._name = _redact(self.base_url)

    def query(self, expr: str, at: Instant | None = None) -> list[Sample]:
        """Evaluate `expr` at one instant (now when `at` is None)."""
        form = {"query": expr, "timeout": _seconds(self.timeout)}
        if at is not None:
            form["time"] = _unix(at)
        data = self._call("POST", "/api/v1/query", form)
        result_type, result = self._result(data)

        if result_type == "vector":
            return [self._sample(element) for element in self._elements(result)]
        if result_type == "scalar":
            timestamp, value = self._point(result)
            return [Sample(Labels(), value, timestamp)]
        if result_type == "matrix":
            raise BadQuery(
                "the query returns a range vector; "
                "wrap it in a function such as rate() or avg_over_time()"
            )
        if result_type == "string":
            raise BadQuery("the query returns a string, not a number or an instant vector")
        raise self._unexpected("unknown resultType")

    def query_range(
        self, expr: str, start: Instant, end: Instant, step: timedelta | float
    ) -> list[Series]:
        """Evaluate `expr` at every `step` from `start` to `end`."""
        if isinstance(step, timedelta):
            step = step.total_seconds()
        form = {
            "query": expr,
            "start": _unix(start),
            "end": _unix(end),
            "step": _seconds(step),
            "timeout": _seconds(self.timeout),
        }
        data = self._call("POST", "/api/v1/query_range", form)
        result_type, result = self._result(data)
        if result_type != "matrix":
            named = repr(result_type) if result_type in _RESULT_TYPES else "of an unknown kind"
            raise self._unexpected(f"a range query answered with resultType {named}")
        return [self._series(element) for element in self._elements(result)]

    def validate(self, expr: str) -> None:
        """Raise BadQuery with Prometheus' own words if `expr` does not parse.

        Uses /api/v1/format_query (Prometheus 2.38+): it parses without running.
        """
        self._call("GET", "/api/v1/format_query", {"query": expr})

    def buildinfo(self) -> dict[str, str]:
        """Version details of the source; a cheap "is it there?" check."""
        data = self._call("GET", "/api/v1/status/buildinfo", {})
        if not isinstance(data, dict):
            raise self._unexpected("buildinfo data is not an object")
        return {str(key): str(value) for key, value in data.items()}

    # The edge: one HTTP exchange, every failure mapped to a SourceError.

    def _call(self, method: str, path: str, params: dict[str, str]) -> Any:
        where = f"Prometheus at {self._name}"
        form = {"params": params} if method == "GET" else {"data": params}
        try:
            answer = self.guard.request(
                method, self.base_url + path, headers=self.headers, timeout=self.timeout, **form
            )
        except outbound.Timeout:
            raise SourceTimeout(f"{where} did not answer within {self.timeout:g} s") from None
        except outbound.Refused as error:
            raise SourceUnavailable(f"{where} is not queried: {error.message}") from None
        except outbound.Unsendable as error:
            # A header or host that cannot be put on the wire (saved by an older
            # release, or through the ORM): the source cannot be queried as configured.
            raise SourceUnavailable(
                f"{where} cannot be queried as configured ({error.what})"
            ) from None
        except outbound.OutboundError as error:
            raise SourceUnavailable(f"{where} {error.message}") from None

        try:
            envelope = json.loads(answer.body)
        except (ValueError, RecursionError):
            envelope = None
        if not isinstance(envelope, dict) or envelope.get("status") not in ("success", "error"):
            raise self._non_api_answer(answer, path)

        if envelope["status"] == "error":
            raise self._error(envelope, where)

        if not answer.ok:
            raise self._non_api_answer(answer, path)
        warnings = envelope.get("warnings")
        for warning in (warnings if isinstance(warnings, list) else [])[:_MAX_WARNINGS_LOGGED]:
            # Logged, never shown: cut short, as the source chooses what it says.
            logger.warning("%s warned: %s", where, _cut(str(warning), _MAX_WARNING))
        if "data" not in envelope:
            raise self._unexpected("the answer has no data")
        return envelope["data"]

    def _error(self, envelope: dict, where: str) -> SourceError:
        error_type = envelope.get("errorType")
        if not isinstance(error_type, str) or error_type not in _KNOWN_ERROR_TYPES:
            error_type = "unknown"
        error_class = _ERROR_TYPES.get(error_type, SourceUnavailable)
        if error_class is BadQuery:
            # Prometheus' own parse error: the one foreign text a message carries.
            message = envelope.get("error")
            if not isinstance(message, str) or not message.strip():
                message = "no error message"
            return BadQuery(_cut(message, _MAX_PARSE_ERROR))
        if error_class is QueryFailed:
            return QueryFailed(f"{where} could not run the query (execution error)")
        if error_class is SourceTimeout:
            return SourceTimeout(f"{where} gave up on the query (timeout)")
        return SourceUnavailable(f"{where} failed ({error_type} error)")

    def _non_api_answer(self, answer: outbound.Answer, path: str) -> SourceUnavailable:
        where = f"Prometheus at {self._name}"
        if answer.status == 404 and path == "/api/v1/format_query":
            return SourceUnavailable(
                f"{where} cannot check queries: /api/v1/format_query needs Prometheus 2.38 or later"
            )
        # Never quote the body: a source URL pointed at some other internal service
        # must not turn rule checks into a way of reading that service's pages.
        content_type = answer.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if not content_type:
            kind = "no content type"
        elif content_type in _NAMED_CONTENT_TYPES:
            kind = content_type
        else:
            kind = "another content type"
        if answer.ok:
            return SourceUnavailable(
                f"{where} answered something that is not its API ({kind}, HTTP {answer.status})"
            )
        return SourceUnavailable(f"{where} answered HTTP {answer.status} ({kind})")

    # Reading the answer: every shape is checked before it is trusted.

    def _unexpected(self, detail: str) -> SourceUnavailable:
        return SourceUnavailable(f"unexpected answer from Prometheus at {self._name}: {detail}")

    def _result(self, data: Any) -> tuple[str, Any]:
        if not isinstance(data, dict) or "resultType" not in data or "result" not in data:
            raise self._unexpected("data has no resultType and result")
        return str(data["resultType"]), data["result"]

    def _elements(self, result: Any) -> list[dict]:
        if not isinstance(result, list) or not all(isinstance(e, dict) for e in result):
            raise self._unexpected("result is not a list of series")
        return result

    def _labels(self, element: dict) -> Labels:
        metric = element.get("metric")
        if not isinstance(metric, dict) or not all(
            isinstance(name, str) and isinstance(value, str) for name, value in metric.items()
        ):
            raise self._unexpected("a series has no metric labels")
        return Labels(metric)

    def _point(self, point: Any) -> tuple[float, float]:
        if not isinstance(point, list) or len(point) != 2:
            raise self._unexpected("a point is not a [timestamp, value] pair")
        timestamp, value = point
        if isinstance(timestamp, bool) or not isinstance(timestamp, (int, float)):
            raise self._unexpected("a timestamp is not a number")
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise self._unexpected("a value is not a number")
        try:
            # float() reads Prometheus' "NaN", "+Inf" and "-Inf" as they are meant.
            number = float(value)
        except (ValueError, OverflowError):  # OverflowError: a 400-digit JSON integer
            raise self._unexpected("a value is not a number") from None
        try:
            return float(timestamp), number
        except OverflowError:
            raise self._unexpected("a timestamp is not a number") from None

    def _sample(self, element: dict) -> Sample:
        timestamp, value = self._point(element.get("value"))
        return Sample(self._labels(element), value, timestamp)

    def _series(self, element: dict) -> Series:
        values = element.get("values")
        if not isinstance(values, list):
            raise self._unexpected("a series has no values")
        return Series(self._labels(element), tuple(self._point(point) for point in values))


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _unix(at: Instant) -> str:
    if isinstance(at, datetime):
        if at.tzinfo is None:
            raise ValueError("query times must be timezone-aware datetimes")
        at = at.timestamp()
    if not math.isfinite(at):
        raise ValueError(f"query time {at!r} is not a finite number")
    return f"{at:.3f}"


def _seconds(value: float) -> str:
    # Prometheus reads a bare number as seconds, for `step` and `timeout` alike.
    return repr(float(value))


def _redact(url: str) -> str:
    """The URL without any user:password part, fit for messages and logs."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
