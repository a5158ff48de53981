"""OpenSLO v1 in and out: YAML streams of `SLO` (and `SLI`) documents to and from the
SLO documents of documents.py.

Pure: text in, documents and notes out (and back). The management commands
import_openslo and export_openslo apply and gather them.

What maps (OpenSLO -> document):

    metadata.name -> slug            metadata.displayName -> name (else metadata.name)
    metadata.labels (string values) -> labels        spec.description -> description
    spec.service -> service          metricSource.metricSourceRef -> source
    ratioMetric good|bad, total -> a ratio SLI of counter selectors
    thresholdMetric + objective op/value -> a threshold SLI
    timeWindow rolling 7d|1w, 28d|4w, 30d -> 7d, 28d, 30d
    timeWindow calendar 1w|1M|1Q + calendar.timeZone -> week, month, quarter + time_zone
    budgetingMethod Occurrences|Timeslices -> occurrences, timeslices
    objectives[0] target|targetPercent -> objective (percent)
    objectives[0] timeSliceTarget, timeSliceWindow -> slice_target, slice_length
    metadata.annotations "controlplane/<field>" -> what OpenSLO has no place for
        (min-events, page, ticket, escalation-policy, runbook, enabled, and time-zone of
        a rolling window)

Everything else is either refused (an error naming the file, the document and the
field) or ignored with a note naming it: never dropped silently.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NoReturn

import yaml

from controlplane.promql.durations import format_duration, parse_duration

API_VERSION = "openslo/v1"
# Kinds of the OpenSLO v1 specification that an import may carry and we do not read:
# they are noted and skipped, any other kind is refused.
OTHER_KINDS = ("DataSource", "Service", "AlertPolicy", "AlertCondition", "AlertNotificationTarget")
ROLLING = {"7d": "7d", "1w": "7d", "28d": "28d", "4w": "28d", "30d": "30d"}
CALENDAR = {"1w": "week", "1M": "month", "1Q": "quarter"}
CALENDAR_DURATIONS = {window: duration for duration, window in CALENDAR.items()}
OPS = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
OPENSLO_OPS = {op: name for name, op in OPS.items()}
BUDGETING = {"occurrences": "occurrences", "timeslices": "timeslices"}
# Written before every query's selector; the range is ours to choose, as an import
# discards it (the evaluation takes its own increases).
RATE_RANGE = "5m"
# A calendar start every one of our calendar windows agrees with: a Monday, the 1st
# of a month and of a quarter, at midnight.
CALENDAR_START = "2024-01-01 00:00:00"
ANNOTATION_PREFIX = "controlplane/"
# What documents.apply takes when a document leaves these out (documents.DEFAULTS,
# which this pure module does not import).
DEFAULTS: dict[str, Any] = {
    "min_events": 0,
    "page": True,
    "ticket": True,
    "escalation_policy": None,
    "runbook": None,
    "enabled": True,
}
DEFAULT_SLICE = "5m"
# Annotation name -> document field: what an SLO holds and OpenSLO has no field for.
ANNOTATIONS = {
    "min-events": "min_events",
    "page": "page",
    "ticket": "ticket",
    "escalation-policy": "escalation_policy",
    "runbook": "runbook",
    "enabled": "enabled",
    "time-zone": "time_zone",
}
SUPPORTED_QUERIES = (
    "a counter selector, sum(rate(SELECTOR[…])), sum(increase(SELECTOR[…])), "
    "rate(SELECTOR[…]) or increase(SELECTOR[…])"
)


class OpenSLOError(ValueError):
    """An import that cannot be read: the message names the file, the document and the
    field."""


@dataclass(frozen=True)
class Place:
    """Where something is: a file, the document's position in its YAML stream (from 1),
    what the document is ("SLO api-availability"), and a field path in it."""

    origin: str
    index: int
    what: str = ""
    path: str = ""

    def at(self, path: str) -> Place:
        return Place(self.origin, self.index, self.what, path)

    def __str__(self) -> str:
        where = f"{self.origin}, document {self.index}"
        if self.what:
            where += f" ({self.what})"
        return f"{where}, {self.path}" if self.path else where


@dataclass(frozen=True)
class Converted:
    """One OpenSLO SLO as our document, with where each of its fields came from."""

    document: dict[str, Any]
    place: Place
    # Document field as documents.apply names it in errors ("sli.total", "objective")
    # -> its place in the OpenSLO files.
    fields: dict[str, Place] = field(default_factory=dict)

    @property
    def slug(self) -> str:
        return self.document["slug"]

    def where(self, key: str) -> Place:
        """The place of a document field (the SLO itself for a field it has no place of)."""
        return self.fields.get(key) or self.place


@dataclass(frozen=True)
class Reading:
    slos: tuple[Converted, ...]
    # Every field, document and conversion the import did not take as it is.
    notes: tuple[str, ...]

    @property
    def documents(self) -> list[dict[str, Any]]:
        return [converted.document for converted in self.slos]


# Reading


def read(text: str, origin: str) -> Reading:
    """The SLOs of one OpenSLO v1 YAML stream."""
    return read_all([(origin, text)])


def read_all(texts: Iterable[tuple[str, str]]) -> Reading:
    """The SLOs of several OpenSLO v1 YAML streams, given as (origin, text): an SLO's
    `indicatorRef` may name an SLI of any of them. Raises OpenSLOError on the first
    document that cannot be imported."""
    notes: list[str] = []
    slos: list[tuple[Place, dict]] = []
    slis: dict[str, tuple[Place, dict]] = {}
    for origin, text in texts:
        for index, body in _documents(origin, text):
            place = Place(origin, index)
            kind = _header(place, body)
            name = _name(place.at(""), body)
            place = Place(origin, index, f"{kind} {name}")
            if kind in OTHER_KINDS:
                notes.append(f"{place}: ignored: kind {kind} is not imported")
            elif kind == "SLI":
                if name in slis:
                    _fail(
                        place.at("metadata.name"),
                        f"a second SLI named {name!r} (the first is {slis[name][0]})",
                    )
                slis[name] = (place, body)
            else:
                slos.append((place, body))

    converted: list[Converted] = []
    seen: dict[str, Place] = {}
    referenced: set[str] = set()
    for place, body in slos:
        slug = body["metadata"]["name"]
        if slug in seen:
            _fail(
                place.at("metadata.name"),
                f"a second SLO named {slug!r} (the first is {seen[slug]})",
            )
        seen[slug] = place
        converted.append(_read_slo(place, body, slis, referenced, notes))
    for name, (place, _body) in slis.items():
        if name not in referenced:
            notes.append(f"{place}: ignored: no SLO of this import names it in indicatorRef")
    return Reading(tuple(converted), tuple(dict.fromkeys(notes)))


def _documents(origin: str, text: str) -> Iterable[tuple[int, dict]]:
    try:
        for index, body in enumerate(yaml.safe_load_all(text), start=1):
            if body is None:  # an empty document, e.g. after a trailing ---
                continue
            if not isinstance(body, dict):
                _fail(
                    Place(origin, index),
                    f"not a mapping (apiVersion, kind, metadata, spec) but {_type(body)}",
                )
            yield index, body
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise OpenSLOError(f"{origin}: not YAML{where}: {problem}") from None


def _header(place: Place, body: dict) -> str:
    version = body.get("apiVersion")
    if version != API_VERSION:
        if version is None:
            _fail(place.at("apiVersion"), f"missing: only {API_VERSION} is read")
        _fail(place.at("apiVersion"), f"{version!r}: only {API_VERSION} is read")
    kind = body.get("kind")
    if kind not in ("SLO", "SLI", *OTHER_KINDS):
        if kind is None:
            _fail(place.at("kind"), "missing: SLO and SLI documents are imported")
        _fail(place.at("kind"), f"{kind!r} is no OpenSLO v1 kind: SLO and SLI are imported")
    return kind


def _name(place: Place, body: dict) -> str:
    metadata = _mapping(place.at("metadata"), body.get("metadata"))
    name = metadata.get("name")
    if not isinstance(name, str) or not name.strip():
        _fail(place.at("metadata.name"), "missing: every document has a name")
    return name


def _read_slo(
    place: Place, body: dict, slis: dict[str, tuple[Place, dict]], referenced: set, notes: list
) -> Converted:
    def note(path: str, reason: str) -> None:
        notes.append(f"{place.at(path)}: ignored: {reason}")

    fields: dict[str, Place] = {}
    metadata = body["metadata"]
    document: dict[str, Any] = {"slug": metadata["name"]}
    fields["slug"] = place.at("metadata.name")
    display = metadata.get("displayName")
    if display is not None and not isinstance(display, str):
        _fail(place.at("metadata.displayName"), f"text, not {_type(display)}")
    document["name"] = display if display else metadata["name"]
    fields["name"] = place.at("metadata.displayName" if display else "metadata.name")
    for key in metadata:
        if key not in ("name", "displayName", "labels", "annotations"):
            note(f"metadata.{key}", "not supported")
    for key in body:
        if key not in ("apiVersion", "kind", "metadata", "spec"):
            note(str(key), "not supported")

    spec = _mapping(place.at("spec"), body.get("spec"))
    _leftovers(
        spec,
        "spec",
        ("description", "service", "indicator", "indicatorRef", "timeWindow",
         "budgetingMethod", "objectives"),
        note,
        {"alertPolicies": "burn-rate alerts come from the SLO itself (page and ticket)"},
    )  # fmt: skip
    description = spec.get("description")
    if description is not None and not isinstance(description, str):
        _fail(place.at("spec.description"), f"text, not {_type(description)}")
    document["description"] = description or ""
    fields["description"] = place.at("spec.description")
    service = spec.get("service")
    if service is not None and not isinstance(service, str):
        _fail(place.at("spec.service"), f"the name of a service, not {_type(service)}")
    document["service"] = service or None
    fields["service"] = place.at("spec.service")

    indicator = _indicator(place, spec, slis, referenced, notes)
    budgeting = _budgeting(place, spec)
    document["budgeting"] = budgeting
    fields["budgeting"] = place.at("spec.budgetingMethod")
    if indicator.kind == "threshold" and budgeting != "timeslices":
        _fail(
            place.at("spec.budgetingMethod"),
            "a thresholdMetric is budgeted by Timeslices only (a slice is good when the "
            "condition holds)",
        )
    sli, objective = _objective(place, spec, indicator, budgeting, document, fields, note)
    document["sli"] = sli
    document["objective"] = objective
    fields.update(indicator.fields)
    if indicator.source is not None:
        document["source"] = indicator.source
        fields["source"] = indicator.source_place
    _time_window(place, spec, document, fields, note)
    document["labels"] = _labels(place, metadata.get("labels"), note)
    fields["labels"] = place.at("metadata.labels")
    _annotations(place, metadata.get("annotations"), document, fields, note)
    if indicator.conversions:
        notes.append(
            f"{place}: the queries are read as counter selectors: "
            + "; ".join(indicator.conversions)
        )
    return Converted(document, place, fields)


@dataclass
class _Indicator:
    kind: str
    sli: dict[str, Any]
    fields: dict[str, Place]
    source: str | None = None
    source_place: Place | None = None
    conversions: list[str] = field(default_factory=list)


def _indicator(
    place: Place, spec: dict, slis: dict[str, tuple[Place, dict]], referenced: set, notes: list
) -> _Indicator:
    inline, ref = spec.get("indicator"), spec.get("indicatorRef")
    if inline is not None and ref is not None:
        _fail(place.at("spec.indicator"), "give indicator or indicatorRef, not both")
    if inline is not None:
        body = _mapping(place.at("spec.indicator"), inline)
        return _read_sli(place, "spec.indicator", body, notes)
    if ref is None:
        _fail(place.at("spec.indicator"), "missing: give indicator (inline) or indicatorRef")
    if not isinstance(ref, str) or ref not in slis:
        known = ", ".join(sorted(slis)) or "none"
        _fail(
            place.at("spec.indicatorRef"),
            f"{ref!r} names no SLI document of this import (its SLIs: {known})",
        )
    referenced.add(ref)
    sli_place, body = slis[ref]
    return _read_sli(sli_place, "", body, notes)


def _read_sli(place: Place, base: str, body: dict, notes: list) -> _Indicator:
    """An SLI document, or an SLO's inline `indicator` (at `base`)."""

    def at(path: str) -> Place:
        return place.at(f"{base}.{path}" if base else path)

    def note(path: str, reason: str) -> None:
        notes.append(f"{at(path)}: ignored: {reason}")

    metadata = body.get("metadata")
    if metadata is not None:
        for key in _mapping(at("metadata"), metadata):
            if key != "name":
                note(f"metadata.{key}", "an SLI's metadata is not kept")
    for key in body:
        if key not in ("apiVersion", "kind", "metadata", "spec"):
            note(str(key), "not supported")
    spec = _mapping(at("spec"), body.get("spec"))
    _leftovers(
        spec,
        "spec",
        ("ratioMetric", "thresholdMetric"),
        note,
        {"description": "an SLI's description is not kept (the SLO's is)"},
    )
    ratio, threshold = spec.get("ratioMetric"), spec.get("thresholdMetric")
    if ratio is not None and threshold is not None:
        _fail(at("spec.ratioMetric"), "give ratioMetric or thresholdMetric, not both")
    if threshold is not None:
        metric = _mapping(at("spec.thresholdMetric"), threshold)
        _leftovers(metric, "spec.thresholdMetric", ("metricSource",), note)
        query = _metric_source(at, "spec.thresholdMetric", metric, note)
        indicator = _Indicator(
            "threshold", {"kind": "threshold", "expr": query.text}, {"sli.expr": query.place}
        )
        _set_source(indicator, query)
        return indicator
    if ratio is None:
        _fail(at("spec"), "missing ratioMetric or thresholdMetric")
    metric = _mapping(at("spec.ratioMetric"), ratio)
    path = "spec.ratioMetric"
    for key in ("raw", "rawType"):
        if key in metric:
            _fail(
                at(f"{path}.{key}"),
                "a precomputed ratio cannot give the exact increases of a long window: "
                "give good or bad, and total, as counters",
            )
    _leftovers(metric, path, ("counter", "good", "bad", "total"), note)
    counter = metric.get("counter", True)
    if counter is not True:
        _fail(
            at(f"{path}.counter"),
            f"{counter!r}: the SLO counts events with counters (counter: true), "
            "so that a window's events are the exact increase of each counter",
        )
    if ("good" in metric) == ("bad" in metric):
        _fail(at(path), "give good or bad (with total), not both and not neither")
    if "total" not in metric:
        _fail(at(f"{path}.total"), "missing: a ratio needs the total events")
    indicator = _Indicator("ratio", {"kind": "ratio"}, {})
    for part in ("good", "bad", "total"):
        if part not in metric:
            continue
        part_path = f"{path}.{part}"
        body_part = _mapping(at(part_path), metric[part])
        _leftovers(body_part, part_path, ("metricSource",), note)
        query = _metric_source(at, part_path, body_part, note)
        try:
            selector = counter_selector(query.text)
        except ValueError as error:
            _fail(query.place, str(error))
        if selector != query.text.strip():
            indicator.conversions.append(f"{part} {query.text.strip()} as {selector}")
        indicator.sli[part] = selector
        indicator.fields[f"sli.{part}"] = query.place
        _set_source(indicator, query)
    return indicator


@dataclass(frozen=True)
class _Query:
    text: str
    place: Place
    source: str | None
    source_place: Place


def _metric_source(at, path: str, body: dict, note) -> _Query:
    path = f"{path}.metricSource"
    source = _mapping(at(path), body.get("metricSource"))
    _leftovers(source, path, ("metricSourceRef", "type", "spec"), note)
    kind = source.get("type")
    if kind is not None and (not isinstance(kind, str) or kind.lower() != "prometheus"):
        _fail(at(f"{path}.type"), f"{kind!r}: only Prometheus sources are read")
    ref = source.get("metricSourceRef")
    if ref is not None and (not isinstance(ref, str) or not ref.strip()):
        _fail(at(f"{path}.metricSourceRef"), "the name of one of the organisation's sources")
    spec = _mapping(at(f"{path}.spec"), source.get("spec"))
    _leftovers(spec, f"{path}.spec", ("query",), note)
    query = spec.get("query")
    if not isinstance(query, str) or not query.strip():
        _fail(at(f"{path}.spec.query"), "missing: a PromQL query")
    return _Query(query, at(f"{path}.spec.query"), ref, at(f"{path}.metricSourceRef"))


def _set_source(indicator: _Indicator, query: _Query) -> None:
    if query.source is None:
        return
    if indicator.source is not None and indicator.source != query.source:
        _fail(
            query.source_place,
            f"names the source {query.source!r}, but {indicator.source_place} names "
            f"{indicator.source!r}: an SLO reads one source",
        )
    indicator.source, indicator.source_place = query.source, query.source_place


def _budgeting(place: Place, spec: dict) -> str:
    method = spec.get("budgetingMethod")
    at = place.at("spec.budgetingMethod")
    if method is None:
        _fail(at, "missing: Occurrences or Timeslices")
    if not isinstance(method, str) or method.lower() not in (*BUDGETING, "ratiotimeslices"):
        _fail(at, f"{method!r}: use Occurrences or Timeslices")
    if method.lower() == "ratiotimeslices":
        _fail(
            at,
            "RatioTimeslices (the average of the slices' ratios) is not supported: it "
            "weighs a quiet slice as much as a busy one. Use Occurrences (the exact ratio "
            "of the window's events) or Timeslices (the share of good slices)",
        )
    return BUDGETING[method.lower()]


def _objective(
    place: Place,
    spec: dict,
    indicator: _Indicator,
    budgeting: str,
    document: dict,
    fields: dict,
    note,
) -> tuple[dict[str, Any], float]:
    objectives = spec.get("objectives")
    if objectives is None:
        _fail(place.at("spec.objectives"), "missing: one objective with target or targetPercent")
    if not isinstance(objectives, list):
        _fail(place.at("spec.objectives"), f"a list of one objective, not {_type(objectives)}")
    if len(objectives) != 1:
        _fail(
            place.at("spec.objectives"),
            f"{len(objectives)} objectives: an SLO here has exactly one (make one SLO per "
            "objective)",
        )
    path = "spec.objectives[0]"
    objective = _mapping(place.at(path), objectives[0])
    for key in ("indicator", "indicatorRef", "compositeWeight"):
        if key in objective:
            _fail(
                place.at(f"{path}.{key}"),
                "composite SLOs (an indicator per objective) are not supported",
            )
    _leftovers(
        objective,
        path,
        ("op", "value", "target", "targetPercent", "timeSliceTarget", "timeSliceWindow"),
        note,
        {"displayName": "an objective has no name of its own here (the SLO's is used)"},
    )

    if ("target" in objective) == ("targetPercent" in objective):
        _fail(place.at(path), "give target or targetPercent, not both and not neither")
    if "target" in objective:
        target = _number(place.at(f"{path}.target"), objective["target"])
        if not 0 < target < 1:
            _fail(
                place.at(f"{path}.target"),
                f"{target!r}: the target is a share strictly between 0 and 1, e.g. 0.999",
            )
        # 0.999 is 99.9 percent as written, not 0.999 * 100 = 99.90000000000001.
        percent = float(Decimal(repr(target)) * 100)
        fields["objective"] = place.at(f"{path}.target")
    else:
        percent = _number(place.at(f"{path}.targetPercent"), objective["targetPercent"])
        if not 0 < percent < 100:
            _fail(
                place.at(f"{path}.targetPercent"),
                f"{percent!r}: the target is a percentage strictly between 0 and 100, e.g. 99.9",
            )
        fields["objective"] = place.at(f"{path}.targetPercent")

    sli = dict(indicator.sli)
    if indicator.kind == "threshold":
        op = objective.get("op")
        if not isinstance(op, str) or op not in OPS:
            _fail(
                place.at(f"{path}.op"),
                ("missing" if op is None else f"{op!r}")
                + f": a thresholdMetric's objective compares with {', '.join(OPS)}",
            )
        if "value" not in objective:
            _fail(place.at(f"{path}.value"), "missing: the value the query is compared with")
        sli["op"] = OPS[op]
        sli["threshold"] = _number(place.at(f"{path}.value"), objective["value"])
        fields["sli.op"] = place.at(f"{path}.op")
        fields["sli.threshold"] = place.at(f"{path}.value")
    else:
        for key in ("op", "value"):
            if key in objective:
                note(f"{path}.{key}", "only a thresholdMetric compares with a value")

    document["slice_length"] = DEFAULT_SLICE
    document["slice_target"] = None
    if budgeting == "timeslices":
        document["slice_length"] = _slice_length(place.at(f"{path}.timeSliceWindow"), objective)
        fields["slice_length"] = place.at(f"{path}.timeSliceWindow")
        target_at = place.at(f"{path}.timeSliceTarget")
        fields["slice_target"] = target_at
        if indicator.kind == "threshold":
            if "timeSliceTarget" in objective and objective["timeSliceTarget"] != 1:
                note(
                    f"{path}.timeSliceTarget",
                    "a threshold slice is good when the condition holds for every series",
                )
        else:
            if "timeSliceTarget" not in objective:
                _fail(target_at, "missing: Timeslices need the share a slice must reach")
            target = _number(target_at, objective["timeSliceTarget"])
            if not 0 < target <= 1:
                _fail(target_at, f"{target!r}: a share in (0, 1], e.g. 0.95")
            document["slice_target"] = target
    else:
        for key in ("timeSliceTarget", "timeSliceWindow"):
            if key in objective:
                note(f"{path}.{key}", "only Timeslices budgeting has time slices")
    return sli, percent


def _slice_length(at: Place, objective: dict) -> str:
    if "timeSliceWindow" not in objective:
        _fail(at, "missing: Timeslices need the length of a slice, e.g. 5m")
    window = objective["timeSliceWindow"]
    if isinstance(window, int) and not isinstance(window, bool):
        window = f"{window}m"  # OpenSLO reads a bare number as minutes
    elif isinstance(window, str) and window.strip().isdigit():
        window = f"{window.strip()}m"
    if not isinstance(window, str):
        _fail(at, f"a duration such as 5m, not {_type(window)}")
    try:
        return format_duration(parse_duration(window.strip()))
    except ValueError as error:
        _fail(at, f"{window!r} is not a duration such as 5m or 1h ({error})")


def _time_window(place: Place, spec: dict, document: dict, fields: dict, note) -> None:
    windows = spec.get("timeWindow")
    at = place.at("spec.timeWindow")
    if windows is None:
        _fail(at, "missing: one rolling (e.g. 28d) or calendar (e.g. 1M) window")
    if not isinstance(windows, list) or len(windows) != 1:
        count = f"{len(windows)} windows" if isinstance(windows, list) else _type(windows)
        _fail(at, f"a list of exactly one window, not {count}")
    path = "spec.timeWindow[0]"
    window = _mapping(place.at(path), windows[0])
    _leftovers(window, path, ("duration", "isRolling", "calendar"), note)
    duration = window.get("duration")
    fields["window"] = place.at(f"{path}.duration")
    if not isinstance(duration, str) or not duration.strip():
        _fail(place.at(f"{path}.duration"), "missing: a duration such as 28d or 1M")
    duration = duration.strip()
    calendar = window.get("calendar")
    rolling = window.get("isRolling", calendar is None)
    if not isinstance(rolling, bool):
        _fail(place.at(f"{path}.isRolling"), f"true or false, not {_type(rolling)}")
    if rolling:
        if calendar is not None:
            _fail(
                place.at(f"{path}.calendar"), "a rolling window (isRolling: true) has no calendar"
            )
        if duration not in ROLLING:
            _fail(
                place.at(f"{path}.duration"),
                f"rolling window {duration!r} is not supported: use 7d (or 1w), 28d (or 4w) or 30d",
            )
        document["window"] = ROLLING[duration]
        document["time_zone"] = "UTC"
        return
    if duration not in CALENDAR:
        _fail(
            place.at(f"{path}.duration"),
            f"calendar window {duration!r} is not supported: use 1w (a week from Monday), "
            "1M (a month) or 1Q (a quarter)",
        )
    document["window"] = CALENDAR[duration]
    calendar = _mapping(place.at(f"{path}.calendar"), calendar)
    _leftovers(calendar, f"{path}.calendar", ("timeZone", "startTime"), note)
    zone = calendar.get("timeZone")
    if not isinstance(zone, str) or not zone.strip():
        _fail(
            place.at(f"{path}.calendar.timeZone"),
            "missing: the IANA time zone whose midnight starts the window, e.g. Europe/Paris",
        )
    document["time_zone"] = zone.strip()
    fields["time_zone"] = place.at(f"{path}.calendar.timeZone")
    if "startTime" in calendar:
        start_at = place.at(f"{path}.calendar.startTime")
        start = _start_time(start_at, calendar["startTime"])
        if not _aligned(start, document["window"]):
            note(
                f"{path}.calendar.startTime",
                f"{document['window']}s here start at local midnight on "
                + {"week": "Monday", "month": "the 1st", "quarter": "the 1st of January, "
                   "April, July and October"}[document["window"]],
            )  # fmt: skip


def _start_time(at: Place, value: Any) -> datetime.datetime:
    # YAML reads an unquoted 2024-01-01 00:00:00 as a datetime already.
    if isinstance(value, datetime.datetime):
        return value
    if isinstance(value, datetime.date):
        return datetime.datetime(value.year, value.month, value.day)
    if isinstance(value, str):
        try:
            return datetime.datetime.fromisoformat(value.strip())
        except ValueError:
            pass
    _fail(at, f"{value!r} is not a date and time such as {CALENDAR_START}")


def _aligned(start: datetime.datetime, window: str) -> bool:
    if start.time() != datetime.time(0):
        return False
    if window == "week":
        return start.weekday() == 0
    if window == "month":
        return start.day == 1
    return start.day == 1 and start.month in (1, 4, 7, 10)


def _labels(place: Place, labels: Any, note) -> dict[str, str]:
    if labels is None:
        return {}
    labels = _mapping(place.at("metadata.labels"), labels)
    kept: dict[str, str] = {}
    for key, value in labels.items():
        if isinstance(value, str):
            kept[str(key)] = value
        elif isinstance(value, list):
            note(f"metadata.labels.{key}", "a list of values: a label here holds one string")
        else:
            note(f"metadata.labels.{key}", f"{_type(value)}: a label here holds one string")
    return kept


def _annotations(place: Place, annotations: Any, document: dict, fields: dict, note) -> None:
    if annotations is None:
        return
    annotations = _mapping(place.at("metadata.annotations"), annotations)
    for key, value in annotations.items():
        path = f'metadata.annotations."{key}"'
        name = str(key).removeprefix(ANNOTATION_PREFIX)
        if not str(key).startswith(ANNOTATION_PREFIX) or name not in ANNOTATIONS:
            note(path, "an annotation this import does not know")
            continue
        target = ANNOTATIONS[name]
        if target == "time_zone" and document["window"] in CALENDAR.values():
            note(path, "a calendar window takes calendar.timeZone")
            continue
        document[target] = _annotation(place.at(path), target, value)
        fields[target] = place.at(path)


def _annotation(at: Place, target: str, value: Any) -> Any:
    if target == "min_events":
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        if isinstance(value, str) and value.strip().isdigit():
            return int(value.strip())
        _fail(at, f"{value!r}: a whole number of events, 0 or more")
    if target in ("page", "ticket", "enabled"):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        _fail(at, f'{value!r}: "true" or "false"')
    if not isinstance(value, str):
        _fail(at, f"text, not {_type(value)}")
    if target in ("escalation_policy", "runbook"):
        return value.strip() or None
    return value.strip()


def _leftovers(
    body: dict, path: str, known: Sequence[str], note, reasons: Mapping[str, str] | None = None
) -> None:
    """Note every key of `body` that is neither read nor refused."""
    for key in body:
        if key not in known:
            note(f"{path}.{key}", (reasons or {}).get(key, "not supported"))


def _mapping(at: Place, value: Any) -> dict:
    if value is None:
        _fail(at, "missing")
    if not isinstance(value, dict):
        _fail(at, f"a mapping (key: value), not {_type(value)}")
    return value


def _number(at: Place, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        _fail(at, f"a number, not {_type(value)}")
    try:
        number = float(value)
    except OverflowError:  # an integer of hundreds of digits
        _fail(at, "a number too large to be a float")
    if not math.isfinite(number):
        _fail(at, "a finite number, not .inf or .nan")
    return number


def _type(value: Any) -> str:
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, (int, float)):
        return f"{value!r} (a number)"
    if isinstance(value, str):
        return f"{value!r} (text)"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _fail(at: Place, message: str) -> NoReturn:
    raise OpenSLOError(f"{at}: {message}")


# Queries: OpenSLO carries whole PromQL expressions, our ratio SLI counter selectors.

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_MATCH_OPS = ("=~", "!~", "!=", "=")
_COUNTING = ("rate", "increase")


def counter_selector(query: str) -> str:
    """The counter selector of `query`, a bare selector or one of
    sum(rate(SEL[…])), sum(increase(SEL[…])), rate(SEL[…]), increase(SEL[…]).

    Raises ValueError for any other query: the SLO takes exact increases of the
    counters over each of its windows, which a ready-made rate cannot give."""
    scan = _Scanner(query)
    try:
        selector = scan.query()
    except _Refused as error:
        raise ValueError(
            f"{query.strip()!r} is not {SUPPORTED_QUERIES} ({error}): the SLO reads the "
            "counters themselves to take the exact increase over each window (up to a "
            'quarter), so give the counter selector, e.g. http_requests_total{code=~"5.."}'
        ) from None
    return selector


class _Refused(Exception):
    pass


class _Scanner:
    """A small reader of the few PromQL shapes above: a selector with its label
    matchers (strings quoted with ", ' or `), inside at most sum() and rate() or
    increase() with a range."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def query(self) -> str:
        self.space()
        word = self.peek_word()
        if word == "sum":
            self.word()
            self.space()
            if self.peek_word() in ("by", "without"):
                raise _Refused("grouping by labels: an SLO is one ratio over all series")
            self.expect("(", "sum must be followed by (")
            self.space()
            if self.peek_word() not in _COUNTING or not self.calls():
                raise _Refused("sum() must hold rate() or increase() of a selector")
            selector = self.counting()
            self.space()
            self.expect(")", "expected ) closing sum(")
            self.space()
            if self.peek_word() in ("by", "without"):
                raise _Refused("grouping by labels: an SLO is one ratio over all series")
        elif word in _COUNTING and self.calls():
            selector = self.counting()
        else:
            selector = self.selector()
        self.space()
        if self.pos != len(self.text):
            raise _Refused(f"unexpected {self.text[self.pos :][:30]!r}")
        return selector

    def counting(self) -> str:
        self.word()
        self.space()
        self.expect("(", "expected (")
        self.space()
        selector = self.selector()
        self.space()
        self.expect("[", "rate() and increase() take a range, e.g. [5m]")
        end = self.text.find("]", self.pos)
        if end < 0:
            raise _Refused("the range is not closed with ]")
        if ":" in self.text[self.pos : end]:
            raise _Refused("a subquery")
        self.pos = end + 1
        self.space()
        self.expect(")", "expected ) closing the function (offset and @ are not supported)")
        return selector

    def selector(self) -> str:
        start = self.pos
        name = self.word()
        self.space()
        if self.peek() == "{":
            self.pos += 1
            matchers = 0
            while True:
                self.space()
                if self.peek() == "}":
                    self.pos += 1
                    break
                label = _LABEL.match(self.text, self.pos)
                if label is None:
                    raise _Refused("expected a label name in the selector")
                self.pos = label.end()
                self.space()
                op = next((op for op in _MATCH_OPS if self.text.startswith(op, self.pos)), None)
                if op is None:
                    raise _Refused("expected =, !=, =~ or !~ after a label name")
                self.pos += len(op)
                self.space()
                self.string()
                matchers += 1
                self.space()
                if self.peek() == ",":
                    self.pos += 1
                elif self.peek() != "}":
                    raise _Refused("expected , or } after a label matcher")
            if not name and not matchers:
                raise _Refused("an empty selector")
        elif not name:
            raise _Refused("expected a metric name or {")
        return self.text[start : self.pos].strip()

    def string(self) -> None:
        quote = self.peek()
        if quote not in ('"', "'", "`"):
            raise _Refused("expected a quoted label value")
        self.pos += 1
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == "\\" and quote != "`":
                self.pos += 2
                continue
            self.pos += 1
            if char == quote:
                return
        raise _Refused("a label value is not closed")

    def calls(self) -> bool:
        """Whether the word at the position is a function call (followed by "(")."""
        match = _NAME.match(self.text, self.pos)
        rest = self.text[match.end() :] if match else ""
        return rest.lstrip().startswith("(")

    def peek(self) -> str:
        return self.text[self.pos : self.pos + 1]

    def peek_word(self) -> str:
        match = _NAME.match(self.text, self.pos)
        return match.group() if match else ""

    def word(self) -> str:
        match = _NAME.match(self.text, self.pos)
        if match is None:
            return ""
        self.pos = match.end()
        return match.group()

    def space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def expect(self, char: str, problem: str) -> None:
        if self.peek() != char:
            raise _Refused(problem)
        self.pos += 1


# Writing


def write(
    documents: Iterable[Mapping[str, Any]],
    organization_slug: str,
    bucket_les: Mapping[str, str] | None = None,
) -> str:
    """Our SLO documents as an OpenSLO v1 YAML stream (indicators inline).

    `bucket_les` gives, by slug, the `le` of a latency SLO's bucket as its source
    spells it ("1" or "1.0"); without it the threshold is written as Python would.
    A latency SLI is written as a ratio of its bucket to its count, and re-imports as a
    ratio SLI: a comment in the stream (and `export_notes`) says so."""
    parts = [f"# The SLOs of organisation {organization_slug}, as OpenSLO v1.\n"]
    for document in documents:
        converted, notes = _to_openslo(document, bucket_les or {})
        comments = "".join(f"# {' '.join(note.splitlines())}\n" for note in notes)
        if converted is None:
            parts.append(comments)
            continue
        parts.append(
            "---\n"
            + comments
            + yaml.dump(
                converted,
                Dumper=_Dumper,
                sort_keys=False,
                allow_unicode=True,
                width=4096,
                default_flow_style=False,
            )
        )
    return "".join(parts)


class _Dumper(yaml.SafeDumper):
    """Safe YAML, readable in any language, that reads back as written."""


def _represent_text(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    # PyYAML writes NEL and the Unicode line separators unescaped in single quotes,
    # which read back as spaces; double quotes escape them.
    if any(char in text for char in "\x85\u2028\u2029"):
        return dumper.represent_scalar("tag:yaml.org,2002:str", text, style='"')
    if "\n" in text:
        # A literal block where YAML allows one (PyYAML falls back to quotes otherwise).
        return dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|")
    return dumper.represent_str(text)


_Dumper.add_representer(str, _represent_text)


def export_notes(
    documents: Iterable[Mapping[str, Any]], bucket_les: Mapping[str, str] | None = None
) -> list[str]:
    """What `write` could not write as it is, one line per SLO concerned."""
    return [note for document in documents for note in _to_openslo(document, bucket_les or {})[1]]


def _to_openslo(
    document: Mapping[str, Any], bucket_les: Mapping[str, str]
) -> tuple[dict[str, Any] | None, list[str]]:
    slug = document["slug"]
    notes: list[str] = []
    sli = document["sli"]
    if sli["kind"] in ("rpo", "rto"):
        # Measured from job runs and alerts (objectives.py): no metric source to write.
        return None, [
            f"SLO {slug} skipped: an {sli['kind'].upper()} objective is measured by the "
            "control plane from job runs and alerts, which OpenSLO cannot express"
        ]
    source = document.get("source")
    objective: dict[str, Any] = {"targetPercent": document["objective"]}
    if sli["kind"] == "threshold":
        if sli["op"] not in OPENSLO_OPS:
            return None, [
                f"SLO {slug} skipped: its comparison {sli['op']} has no OpenSLO operator "
                f"({', '.join(OPS)})"
            ]
        metric: dict[str, Any] = {"thresholdMetric": _source(source, sli["expr"])}
        objective = {"op": OPENSLO_OPS[sli["op"]], "value": sli["threshold"], **objective}
    else:
        if sli["kind"] == "latency":
            good, total = latency_selectors(
                sli["metric"], sli.get("selector") or "", _le(slug, sli, bucket_les)
            )
            parts = {"good": good, "total": total}
            notes.append(
                f"SLO {slug}: its latency SLI ({sli['metric']} under {sli['threshold']!r} s) "
                "is written as the ratio of the bucket to the count: it re-imports as a "
                "ratio SLI"
            )
        else:
            parts = {part: sli[part] for part in ("good", "bad", "total") if sli.get(part)}
        metric = {
            "ratioMetric": {
                "counter": True,
                **{
                    part: _source(source, f"sum(rate({selector}[{RATE_RANGE}]))")
                    for part, selector in parts.items()
                },
            }
        }
    if document.get("budgeting") == "timeslices":
        objective["timeSliceTarget"] = (
            1 if sli["kind"] == "threshold" else document.get("slice_target")
        )
        objective["timeSliceWindow"] = document.get("slice_length") or DEFAULT_SLICE

    metadata: dict[str, Any] = {"name": slug, "displayName": document.get("name") or slug}
    if document.get("labels"):
        metadata["labels"] = dict(document["labels"])
    annotations = {
        f"{ANNOTATION_PREFIX}{name}": _annotation_text(document.get(target, DEFAULTS[target]))
        for name, target in ANNOTATIONS.items()
        if target != "time_zone"
    }
    window = document.get("window") or "30d"
    zone = document.get("time_zone") or "UTC"
    if window in ROLLING.values() and zone != "UTC":
        annotations[f"{ANNOTATION_PREFIX}time-zone"] = zone
    metadata["annotations"] = annotations

    spec: dict[str, Any] = {}
    if document.get("description"):
        spec["description"] = document["description"]
    if document.get("service"):
        spec["service"] = document["service"]
    else:
        notes.append(f"SLO {slug}: no service, which OpenSLO requires: spec.service is left out")
    spec["indicator"] = {"metadata": {"name": slug}, "spec": metric}
    if window in CALENDAR_DURATIONS:
        spec["timeWindow"] = [
            {
                "duration": CALENDAR_DURATIONS[window],
                "calendar": {"startTime": CALENDAR_START, "timeZone": zone},
                "isRolling": False,
            }
        ]
    else:
        spec["timeWindow"] = [{"duration": window, "isRolling": True}]
    spec["budgetingMethod"] = (
        "Timeslices" if document.get("budgeting") == "timeslices" else "Occurrences"
    )
    spec["objectives"] = [objective]
    return {"apiVersion": API_VERSION, "kind": "SLO", "metadata": metadata, "spec": spec}, notes


def latency_selectors(metric: str, selector: str, le: str) -> tuple[str, str]:
    """The good (bucket at `le`) and total (count) counter selectors of a histogram."""
    matchers = selector.strip().rstrip(",").strip()
    bucket = f"{matchers}, le={_promql_string(le)}" if matchers else f"le={_promql_string(le)}"
    count = f"{metric}_count{{{matchers}}}" if matchers else f"{metric}_count"
    return f"{metric}_bucket{{{bucket}}}", count


def _le(slug: str, sli: Mapping[str, Any], bucket_les: Mapping[str, str]) -> str:
    return bucket_les.get(slug) or repr(float(sli["threshold"]))


def _source(source: str | None, query: str) -> dict[str, Any]:
    metric_source: dict[str, Any] = {"type": "Prometheus", "spec": {"query": query}}
    if source:
        metric_source = {"metricSourceRef": source, **metric_source}
    return {"metricSource": metric_source}


def _annotation_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _promql_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
