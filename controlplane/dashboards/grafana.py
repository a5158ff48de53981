"""The pieces every dashboard is made of, on grafana-foundation-sdk's typed builders.

Grafana's own builders (generated from its schemas) check a panel's options as it is
written; what they leave loose is settled here once:

- data sources by fixed uid: `prometheus` and the control plane's API, `controlplane-api`
  (the Infinity plugin), both provisioned by deploy/grafana/provisioning/datasources/;
- panel ids and query refIds are numbered in order (Grafana needs them unique in a
  dashboard; the SDK leaves them empty), and panels are laid out by `Grid`;
- the control plane's annotations (alerts, notifications, silences) are Infinity queries
  of `/api/v1/annotations/`, which the SDK's annotation target (Grafana's built-in
  annotations only) cannot describe: `_InfinityTarget` writes that JSON;
- `render` turns a dashboard into plain JSON-ready dicts, sorted keys left to the writer.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as models

PROMETHEUS = models.DataSourceRef(type_val="prometheus", uid="prometheus")
INFINITY_PLUGIN = "yesoreyeram-infinity-datasource"
CONTROL_PLANE_API = models.DataSourceRef(type_val=INFINITY_PLUGIN, uid="controlplane-api")
ANNOTATIONS_PATH = "/api/v1/annotations/"
# Grafana refuses a dashboard uid longer than this.
UID_LENGTH = 40
TAGS = ["controlplane"]
_UID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")

# The control plane's annotation kinds (/api/v1/annotations/?kind=...), one toggle each.
ANNOTATION_KINDS = (
    ("alert", "Alerts opened, acknowledged, resolved", "red"),
    ("notification", "Notifications sent or given up", "blue"),
    ("silence", "Silences", "purple"),
)


def stable_uid(prefix: str, *parts: str) -> str:
    """A uid from stable names (slugs, never database ids): `prefix-<first part>-<hash>`
    within Grafana's 40 characters. The hash of every part keeps two SLOs apart even
    when their slugs read alike once joined ("a-b"/"c" and "a"/"b-c")."""
    digest = hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:12]
    readable = re.sub(r"[^A-Za-z0-9_-]", "", parts[-1] if parts else "")
    room = UID_LENGTH - len(prefix) - len(digest) - 2
    uid = f"{prefix}-{readable[:room]}-{digest}" if readable and room > 0 else f"{prefix}-{digest}"
    if not _UID.match(uid):
        raise ValueError(f"not a Grafana uid: {uid!r}")
    return uid


def query(
    expr: str,
    legend: str = "",
    *,
    instant: bool = False,
    exemplar: bool = False,
) -> prometheus.Dataquery:
    """A Prometheus target (refIds are numbered by `render`)."""
    target = prometheus.Dataquery().expr(expr).datasource(PROMETHEUS)
    if legend:
        target = target.legend_format(legend)
    target = target.instant() if instant else target.range()
    if exemplar:
        target = target.exemplar(True)
    return target


def series_panel(
    title: str,
    description: str,
    targets: Sequence[prometheus.Dataquery],
    *,
    unit: str = "short",
    bars: bool = False,
    minimum: float | None = None,
    maximum: float | None = None,
    time_from: str = "",
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .unit(unit)
        .targets(list(targets))
        .legend(
            common_builders.VizLegendOptions()
            .show_legend(True)
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.BOTTOM)
            .calcs(["lastNotNull", "max"])
        )
        .tooltip(
            common_builders.VizTooltipOptions()
            .mode(common.TooltipDisplayMode.MULTI)
            .sort(common.SortOrder.DESCENDING)
        )
    )
    if bars:
        panel = panel.draw_style(common.GraphDrawStyle.BARS).fill_opacity(60)
    if minimum is not None:
        panel = panel.min(minimum)
    if maximum is not None:
        panel = panel.max(maximum)
    if time_from:
        panel = panel.time_from(time_from)
    return panel


def stat_panel(
    title: str,
    description: str,
    targets: Sequence[prometheus.Dataquery],
    *,
    unit: str = "short",
    time_from: str = "",
) -> stat.Panel:
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .unit(unit)
        .targets(list(targets))
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]))
        .color_mode(common.BigValueColorMode.VALUE)
        .graph_mode(common.BigValueGraphMode.NONE)
    )
    if time_from:
        panel = panel.time_from(time_from)
    return panel


def label_variable(
    name: str, label: str, metric: str, *, matchers: str = "", multi: bool = True
) -> dashboard.QueryVariable:
    """A variable over the values of `label` on `metric` (Prometheus' label_values)."""
    selector = f"{metric}{{{matchers}}}" if matchers else metric
    variable = (
        dashboard.QueryVariable(name)
        .label(name.replace("_", " ").capitalize())
        .datasource(PROMETHEUS)
        .query(f"label_values({selector}, {label})")
        .refresh(models.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(models.VariableSort.ALPHABETICAL_CASE_INSENSITIVE_ASC)
    )
    if multi:
        variable = variable.multi(True).include_all(True).all_value(".*")
    return variable


def custom_variable(name: str, label: str, values: Sequence[str], default: str) -> Any:
    options = [models.VariableOption(text=v, value=v, selected=v == default) for v in values]
    return (
        dashboard.CustomVariable(name)
        .label(label)
        .values(",".join(values))
        .current(models.VariableOption(text=default, value=default, selected=True))
        .options(options)
    )


class _InfinityTarget(cogbuilder.Builder[Any]):
    """An Infinity query of the control plane's annotations endpoint, as the plugin
    saves it: JSON parsed by the backend's jq, one column per annotation field Grafana
    maps by name (time, timeEnd, title, text, tags).

    The endpoint's `tags` is a JSON array; Infinity's plain backend parser makes a
    non-scalar cell null, and Grafana reads an annotation's tags from one
    comma-separated string, so the jq root selector joins them first."""

    def __init__(self, kind: str, extra: Sequence[tuple[str, str]]) -> None:
        self.kind = kind
        self.extra = tuple(extra)

    def build(self) -> dict[str, Any]:
        params = [
            {"key": "from", "value": "${__from}"},
            {"key": "to", "value": "${__to}"},
            {"key": "kind", "value": self.kind},
            *({"key": key, "value": value} for key, value in self.extra),
        ]
        return {
            "refId": "Anno",
            "datasource": CONTROL_PLANE_API,
            "type": "json",
            "source": "url",
            "parser": "jq-backend",
            "format": "table",
            "url": ANNOTATIONS_PATH,
            "url_options": {"method": "GET", "params": params},
            "root_selector": 'map(.tags |= join(","))',
            "columns": [
                {"selector": "time", "text": "time", "type": "timestamp_epoch"},
                {"selector": "timeEnd", "text": "timeEnd", "type": "timestamp_epoch"},
                {"selector": "title", "text": "title", "type": "string"},
                {"selector": "text", "text": "text", "type": "string"},
                {"selector": "tags", "text": "tags", "type": "string"},
                {"selector": "url", "text": "url", "type": "string"},
                {"selector": "trace_url", "text": "trace_url", "type": "string"},
            ],
        }


def annotations(extra: Sequence[tuple[str, str]] = ()) -> list[dashboard.AnnotationQuery]:
    """The control plane's events on every graph, one toggle per kind; `extra` narrows
    them (e.g. ("slo", "checkout") on an SLO's own dashboard)."""
    found = []
    for kind, name, colour in ANNOTATION_KINDS:
        found.append(
            dashboard.AnnotationQuery()
            .name(name)
            .datasource(CONTROL_PLANE_API)
            .enable(True)
            .hide(False)
            .icon_color(colour)
            .target(_InfinityTarget(kind, extra))
        )
    return found


class Grid:
    """Places panels left to right on Grafana's 24-column grid, a new line when full."""

    WIDTH = 24

    def __init__(self) -> None:
        self.x = 0
        self.y = 0
        self.line_height = 0

    def place(self, panel: Any, width: int = 12, height: int = 8) -> Any:
        if self.x + width > self.WIDTH:
            self.x, self.y, self.line_height = 0, self.y + self.line_height, 0
        panel = panel.grid_pos(models.GridPos(h=height, w=width, x=self.x, y=self.y))
        self.x += width
        self.line_height = max(self.line_height, height)
        return panel

    def row(self, title: str) -> dashboard.Row:
        if self.x:
            self.x, self.y, self.line_height = 0, self.y + self.line_height, 0
        row = dashboard.Row(title).grid_pos(models.GridPos(h=1, w=self.WIDTH, x=0, y=self.y))
        self.y += 1
        return row


def new_dashboard(
    uid: str, title: str, description: str, *, tags: Iterable[str] = (), time_zone: str = ""
) -> dashboard.Dashboard:
    if not _UID.match(uid):
        raise ValueError(f"not a Grafana uid: {uid!r}")
    board = (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([*TAGS, *tags])
        .time("now-6h", "now")
        .refresh("1m")
        .tooltip(models.DashboardCursorSync.CROSSHAIR)
        .readonly()
        .timezone(time_zone or "browser")
    )
    return board


def render(board: dashboard.Dashboard) -> dict[str, Any]:
    """The dashboard as JSON-ready dicts: panels numbered 1.. in order, each panel's
    targets lettered A.., as Grafana would save them."""
    doc = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    number = 0
    for panel in doc.get("panels", []):
        number += 1
        panel["id"] = number
        for index, target in enumerate(panel.get("targets", [])):
            target["refId"] = _letters(index)
        for inner in panel.get("panels", []):  # collapsed rows
            number += 1
            inner["id"] = number
    return doc


def _letters(index: int) -> str:
    name = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        name = chr(ord("A") + rest) + name
    return name


def panels(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel of a rendered dashboard, rows' collapsed panels included, rows left out."""
    found = []
    for panel in doc.get("panels", []):
        if panel.get("type") == "row":
            found.extend(panel.get("panels", []))
        else:
            found.append(panel)
    return found


_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'|`[^`]*`')
_PAIRS = {")": "(", "]": "[", "}": "{"}


def malformed(expr: str) -> str:
    """What is visibly wrong with a PromQL expression: an unterminated string or an
    unbalanced bracket; "" when nothing is. Only a Prometheus parses PromQL (the test
    suite asks one); this catches the damage a row written past validation shows, so
    that an export names the SLO instead of writing a dashboard Grafana would reject."""
    text = _STRING.sub('""', expr)
    if any(quote in text.replace('""', "") for quote in "\"'`"):
        return "an unterminated string"
    stack: list[str] = []
    for char in text:
        if char in "([{":
            stack.append(char)
        elif char in _PAIRS:
            if not stack or stack.pop() != _PAIRS[char]:
                return f"an unbalanced {char!r}"
    if stack:
        return f"an unclosed {stack[-1]!r}"
    return ""
