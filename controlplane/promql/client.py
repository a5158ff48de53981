"""A client for the Prometheus HTTP query API (also spoken by Thanos and Mimir).

Every failure surfaces as a `SourceError` subclass with a message fit for an
admin page: callers never see `requests`, `KeyError` or `ValueError` from here.
"""

import logging
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from urllib3.exceptions import LocationParseError, ReadTimeoutError

logger = logging.getLogger(__name__)


class SourceError(Exception):
    """The source could not answer the query."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadQuery(SourceError):
    """The expression is not valid PromQL, or not usable as a condition."""


class QueryFailed(SourceError):
    """The expression parsed but its evaluation failed (Prometheus `execution`)."""


class SourceUnavailable(SourceError):
    """The source is down, unreachable, or answered something we cannot read."""


class SourceTimeout(SourceError):
    """The source did not answer in time."""


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


class PrometheusClient:
    def __init__(
        self,
        base_url: str,
        timeout: float = 10,
        headers: Mapping[str, str] | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.headers = dict(headers or {})
        self.session = session or requests.Session()
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
        raise self._unexpected(f"unknown resultType {result_type!r}")

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
            raise self._unexpected(f"a range query answered with resultType {result_type!r}")
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
        url = self.base_url + path
        where = f"Prometheus at {self._name}"
        try:
            if method == "GET":
                response = self.session.get(
                    url, params=params, headers=self.headers, timeout=self.timeout
                )
            else:
                response = self.session.post(
                    url, data=params, headers=self.headers, timeout=self.timeout
                )
        except requests.Timeout:
            raise SourceTimeout(f"{where} did not answer within {self.timeout:g} s") from None
        except requests.ConnectionError as error:
            # requests reports a timeout while reading the body as a ConnectionError.
            if any(isinstance(arg, ReadTimeoutError) for arg in error.args):
                raise SourceTimeout(f"{where} did not answer within {self.timeout:g} s") from None
            raise SourceUnavailable(f"{where} is unreachable: {_reason(error)}") from None
        except requests.RequestException as error:
            raise SourceUnavailable(f"{where} could not be queried: {_reason(error)}") from None
        except (UnicodeError, ValueError, LocationParseError) as error:
            # A header or host that cannot be put on the wire (saved by an older
            # release, or through the ORM): the source cannot be queried as configured.
            raise SourceUnavailable(
                f"{where} cannot be queried as configured: {type(error).__name__}"
            ) from None

        try:
            envelope = response.json()
        except (ValueError, RecursionError):
            envelope = None
        if not isinstance(envelope, dict) or envelope.get("status") not in ("success", "error"):
            raise self._non_api_answer(response, path)

        if envelope["status"] == "error":
            error_type = str(envelope.get("errorType") or "unknown")
            message = str(envelope.get("error") or "no error message")
            error_class = _ERROR_TYPES.get(error_type, SourceUnavailable)
            if error_class is SourceTimeout:
                raise SourceTimeout(f"{where} gave up on the query: {message}")
            if error_class is SourceUnavailable:
                raise SourceUnavailable(f"{where} failed ({error_type}): {message}")
            raise error_class(message)

        if not response.ok:
            raise self._non_api_answer(response, path)
        warnings = envelope.get("warnings")
        for warning in warnings if isinstance(warnings, list) else ():
            logger.warning("%s warned: %s", where, warning)
        if "data" not in envelope:
            raise self._unexpected("the answer has no data")
        return envelope["data"]

    def _non_api_answer(self, response: requests.Response, path: str) -> SourceUnavailable:
        where = f"Prometheus at {self._name}"
        if response.status_code == 404 and path == "/api/v1/format_query":
            return SourceUnavailable(
                f"{where} cannot check queries: /api/v1/format_query needs Prometheus 2.38 or later"
            )
        # Never quote the body: a source URL pointed at some other internal service
        # must not turn rule checks into a way of reading that service's pages.
        kind = response.headers.get("Content-Type", "no content type").split(";")[0][:60]
        if response.ok:
            return SourceUnavailable(
                f"{where} answered something that is not its API ({kind}, "
                f"HTTP {response.status_code})"
            )
        return SourceUnavailable(f"{where} answered HTTP {response.status_code} ({kind})")

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
            raise self._unexpected(f"{_short(point)} is not a [timestamp, value] pair")
        timestamp, value = point
        if isinstance(timestamp, bool) or not isinstance(timestamp, (int, float)):
            raise self._unexpected(f"timestamp {_short(timestamp)} is not a number")
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise self._unexpected(f"value {_short(value)} is not a number")
        try:
            # float() reads Prometheus' "NaN", "+Inf" and "-Inf" as they are meant.
            number = float(value)
        except (ValueError, OverflowError):  # OverflowError: a 400-digit JSON integer
            raise self._unexpected(f"value {_short(value)} is not a number") from None
        try:
            return float(timestamp), number
        except OverflowError:
            raise self._unexpected(f"timestamp {_short(timestamp)} is not a number") from None

    def _sample(self, element: dict) -> Sample:
        timestamp, value = self._point(element.get("value"))
        return Sample(self._labels(element), value, timestamp)

    def _series(self, element: dict) -> Series:
        values = element.get("values")
        if not isinstance(values, list):
            raise self._unexpected("a series has no values")
        return Series(self._labels(element), tuple(self._point(point) for point in values))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


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


def _reason(error: requests.RequestException) -> str:
    """The innermost cause, which names the problem (refused, DNS, TLS...)."""
    cause: BaseException = error
    while cause.args and isinstance(cause.args[0], BaseException):
        cause = cause.args[0]
    reason = getattr(cause, "reason", None)
    if isinstance(reason, BaseException):
        cause = reason
    return str(cause) or type(cause).__name__
