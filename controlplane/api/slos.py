"""SLOs as code, with their status: the JSON document of controlplane/slo/documents.py
plus what the evaluator last measured.

A document is checked exactly as the admin checks an SLO (`documents.apply`: the
model's clean(), then every query against the source) and saved or deleted through
the SLO's recorder (`editing`); a refusal names the document's own fields
("sli.total", "objective"). The status fields are read from the evaluator's row in the
same query as the SLO, so a page of the list costs the same few queries for 3 SLOs as
for 3,000.

`GET /slos/<slug>/history/?since=&until=` reads the SLO's snapshots (thinned as they
age: controlplane/slo/history.py) in time order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import mixins, serializers
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from controlplane.alerting.states import OPERATORS
from controlplane.api.access import target_organization
from controlplane.api.bodies import StrictBody
from controlplane.api.errors import Conflict
from controlplane.api.fields import query_time
from controlplane.api.schema import ORGANIZATION, SAVED_CONCURRENTLY
from controlplane.api.scoping import OrganizationScopedViewSet
from controlplane.catalog.actors import Actor
from controlplane.catalog.models import ApiToken, Organization
from controlplane.catalog.validators import contains_surrogate
from controlplane.slo import definition, documents, editing, history, windows
from controlplane.slo.models import SLO, SLOEvaluation, SLOSnapshot
from controlplane.trace_links import trace_url

# The longest stretch one history request reads: the history's own horizon.
LONGEST_SPAN = history.DAILY_UNTIL
# The most snapshots one answer holds. A whole horizon of one SLO evaluated every 60 s
# keeps 4,040 once pruned (history.most_kept); past this the answer says so and links
# the rest.
MOST_SNAPSHOTS = 5000

_NUMBER_OR_NULL = {"type": "number", "nullable": True}
BURN_RATES = {
    "type": "object",
    "description": "The burn rate over each window (1 spends the budget exactly over the "
    "SLO window); null where the window was not measured or saw no traffic.",
    "properties": {name: _NUMBER_OR_NULL for name in definition.BURN_WINDOWS},
    "required": list(definition.BURN_WINDOWS),
    "additionalProperties": False,
}
_TEXT = {"type": "string"}
SLI = {
    "description": "What counts as good, by kind. `ratio`: counter selectors, `good` or "
    '`bad` (one of them) and `total`, e.g. `http_requests_total{code=~"5.."}`; '
    "`latency`: a histogram's name (without _bucket), a label filter without braces and "
    "a threshold in seconds that is one of its buckets; `threshold`: a PromQL expression "
    "compared with a threshold per time slice (time-slice budgeting only); `rpo`: a "
    "backup monitor and the RPO (time slices); `rto`: a restore-drill monitor and/or "
    "services whose critical alerts are incidents, and the RTO (occurrences).",
    "oneOf": [
        {
            "type": "object",
            "title": "ratio",
            "properties": {
                "kind": {"type": "string", "enum": ["ratio"]},
                "good": _TEXT,
                "bad": _TEXT,
                "total": _TEXT,
            },
            "required": ["kind", "total"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "title": "latency",
            "properties": {
                "kind": {"type": "string", "enum": ["latency"]},
                "metric": _TEXT,
                "selector": _TEXT,
                "threshold": {"type": "number"},
            },
            "required": ["kind", "metric", "threshold"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "title": "threshold",
            "properties": {
                "kind": {"type": "string", "enum": ["threshold"]},
                "expr": _TEXT,
                "op": {"type": "string", "enum": list(OPERATORS)},
                "threshold": {"type": "number"},
            },
            "required": ["kind", "expr", "op", "threshold"],
            "additionalProperties": False,
        },
        # RPO and RTO (controlplane/slo/objectives.py): measured from job runs and
        # alerts, with no source.
        {
            "type": "object",
            "title": "rpo",
            "properties": {
                "kind": {"type": "string", "enum": ["rpo"]},
                "job": {**_TEXT, "description": "The backup monitor's slug."},
                "target": {**_TEXT, "description": 'The RPO, e.g. "24h" (the default).'},
            },
            "required": ["kind", "job"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "title": "rto",
            "properties": {
                "kind": {"type": "string", "enum": ["rto"]},
                "job": {
                    **_TEXT,
                    "nullable": True,
                    "description": "The restore-drill monitor's slug (kind restore).",
                },
                "services": {
                    "type": "array",
                    "items": _TEXT,
                    "description": "Services whose critical alerts are incidents.",
                },
                "target": {**_TEXT, "description": 'The RTO, e.g. "4h" (the default).'},
            },
            "required": ["kind"],
            "additionalProperties": False,
        },
    ],
}
WHEN = {"type": "string", "format": "date-time", "nullable": True}


@extend_schema_field(SLI)
class IndicatorField(serializers.JSONField):
    """The document's `sli` object (checked by documents.apply, not here)."""


@extend_schema_field(BURN_RATES)
class BurnRatesField(serializers.JSONField):
    pass


@extend_schema_field(
    {"type": "string", "pattern": r"^[a-z0-9][a-z0-9-]{0,63}$", "example": "api-availability"}
)
class SLOSlugField(serializers.CharField):
    pass


@extend_schema_field({"type": "string", "example": "5m"})
class DurationText(serializers.CharField):
    pass


@extend_schema_field({"type": "string", "enum": SLO.Window.values})
class WindowField(serializers.CharField):
    pass


@extend_schema_field({"type": "string", "enum": SLO.Budgeting.values})
class BudgetingField(serializers.CharField):
    pass


@extend_schema_field({"type": "string", "enum": SLOEvaluation.Status.values})
class SLOStatusField(serializers.CharField):
    pass


class DocumentBody:
    """Between StrictBody (unknown fields and NULs refused) and Serializer: the declared
    fields describe the document in the schema, but the checking is documents.apply's,
    so the API refuses what the admin refuses, with the same words.

    Read-only fields a client sends back (a document read with GET) are dropped.
    """

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, Mapping):
            raise ValidationError({"non_field_errors": ["An SLO document is a JSON object."]})
        # A lone surrogate (JSON can spell \ud800) has no UTF-8: found before a query
        # (a source looked up by that name) does.
        errors = {
            name: ["It contains a surrogate character (U+D800 to U+DFFF)."]
            for name, value in data.items()
            if contains_surrogate(value)
        }
        if errors:
            raise ValidationError(errors)
        fields = self.fields  # type: ignore[attr-defined]
        return {name: value for name, value in data.items() if not fields[name].read_only}


class SLOSerializer(StrictBody, DocumentBody, serializers.Serializer):
    """An SLO document, and the SLO's status as last measured (read-only). Fields not
    listed here are refused; a refused part of `sli` is named `sli.<field>`. A PUT resets
    what it leaves out to the defaults; a PATCH keeps it."""

    slug = SLOSlugField(help_text="Unique in the organisation; it cannot change.")
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True)
    service = serializers.CharField(required=False, allow_null=True, help_text="A service slug.")
    # Not required by the schema: RPO and RTO SLIs have none (documents.apply requires
    # it of the others).
    source = serializers.CharField(
        required=False,
        allow_null=True,
        help_text="The name of the Prometheus source the SLI reads; null for rpo and rto.",
    )
    sli = IndicatorField()
    objective = serializers.FloatField(help_text="Percent, strictly between 0 and 100, e.g. 99.9.")
    window = WindowField(
        required=False, help_text="Rolling (7d, 28d, 30d) or calendar (week, month, quarter)."
    )
    time_zone = serializers.CharField(
        required=False, help_text="IANA name; calendar windows reset at its local midnight."
    )
    budgeting = BudgetingField(required=False)
    slice_length = DurationText(required=False, help_text="Time slices: one slice's length.")
    slice_target = serializers.FloatField(
        required=False,
        allow_null=True,
        help_text="Time slices of a ratio or latency SLI: the share (0-1] a slice must reach.",
    )
    min_events = serializers.IntegerField(
        required=False,
        min_value=0,
        help_text="Below this many events in the window, burn-rate alerts stay quiet.",
    )
    page = serializers.BooleanField(required=False, help_text="Page alerts on or off.")
    ticket = serializers.BooleanField(required=False, help_text="Ticket alerts on or off.")
    escalation_policy = serializers.CharField(
        required=False,
        allow_null=True,
        help_text="An escalation policy's slug; null: the organisation's default policy.",
    )
    runbook = serializers.CharField(
        required=False, allow_null=True, help_text="A runbook slug; null: slo-burn-rate."
    )
    labels = serializers.DictField(child=serializers.CharField(), required=False)
    enabled = serializers.BooleanField(required=False)

    # The evaluator's (SLOEvaluation): read here, never written by an edit.
    status = SLOStatusField(read_only=True)
    sli_value = serializers.FloatField(
        read_only=True,
        allow_null=True,
        help_text="The SLI over the window as a fraction (0.9993); null before the first "
        "evaluation, without data, or without traffic.",
    )
    budget_remaining = serializers.FloatField(
        read_only=True,
        allow_null=True,
        help_text="1 untouched, 0 spent, below 0 overspent; null before any measurement.",
    )
    burn_rates = BurnRatesField(read_only=True)
    events = serializers.FloatField(
        read_only=True, allow_null=True, help_text="Events (or slices) in the window."
    )
    time_to_exhaustion = serializers.FloatField(
        read_only=True,
        allow_null=True,
        help_text="Seconds until the budget is spent at the 1h burn rate; null: not burning.",
    )
    current_value = serializers.FloatField(
        read_only=True,
        allow_null=True,
        help_text="rpo: the age of the last good backup; rto: the longest restore in the "
        "window; in `current_unit`. Null for the other kinds, or with nothing to show.",
    )
    current_unit = serializers.CharField(
        read_only=True, help_text='"s" (seconds) for rpo and rto; empty otherwise.'
    )
    window_start = serializers.DateTimeField(read_only=True, allow_null=True)
    window_end = serializers.DateTimeField(read_only=True, allow_null=True)
    evaluated_at = serializers.DateTimeField(read_only=True, allow_null=True)
    last_error = serializers.CharField(read_only=True)
    trace_id = serializers.CharField(read_only=True, help_text="The last evaluation's trace.")
    trace_url = serializers.CharField(
        read_only=True, help_text="The trace viewer, when configured; empty otherwise."
    )
    verification_note = serializers.CharField(
        read_only=True, help_text="Empty when the queries were checked against the source."
    )
    url = serializers.CharField(read_only=True, help_text="The SLO's page.")

    def to_representation(self, slo: SLO) -> dict[str, Any]:
        row = _evaluation(slo)
        request = self.context.get("request")
        page = slo.get_absolute_url()
        until = row.time_to_exhaustion if row else None
        trace_id = row.trace_id if row else ""
        return {
            **documents.to_document(slo),
            "status": row.status if row else SLOEvaluation.Status.PENDING,
            "sli_value": _finite(row.sli) if row else None,
            "budget_remaining": _finite(row.budget_remaining) if row else None,
            "burn_rates": _burn_rates(row.burn_rates if row else None),
            "events": _finite(row.events) if row else None,
            "time_to_exhaustion": until.total_seconds() if until is not None else None,
            "current_value": _finite(row.current_value) if row else None,
            "current_unit": row.current_unit if row else "",
            "window_start": _when(row.window_start if row else None),
            "window_end": _when(row.window_end if row else None),
            "evaluated_at": _when(row.evaluated_at if row else None),
            "last_error": row.last_error if row else "",
            "trace_id": trace_id,
            "trace_url": trace_url(trace_id),
            "verification_note": slo.verification_note,
            "url": request.build_absolute_uri(page) if request is not None else page,
        }

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if self.instance is None:
            organization: Organization = self.context["organization"]
        else:
            organization = self.instance.organization
        try:
            slo = documents.apply(organization, attrs, current=self.instance, partial=self.partial)
        except DjangoValidationError as error:
            raise ValidationError(documents.document_errors(error)) from None
        return {"slo": slo}

    def create(self, validated_data: dict[str, Any]) -> SLO:
        return _save(validated_data["slo"], self.context["actor"])

    def update(self, instance: SLO, validated_data: dict[str, Any]) -> SLO:
        return _save(validated_data["slo"], self.context["actor"])


def _save(slo: SLO, actor: Actor) -> SLO:
    """Save through the recorder. A slug taken by a concurrent create between the check
    and the insert is refused like any duplicate; any other clash is a 409."""
    try:
        with transaction.atomic():
            editing.save(slo, actor)
    except SLO.DoesNotExist:
        raise Conflict(f"The SLO {slo.slug!r} was deleted meanwhile.") from None
    except IntegrityError:
        taken = SLO.objects.filter(organization_id=slo.organization_id, slug=slo.slug)
        if taken.exclude(pk=slo.pk).exists() if slo.pk else taken.exists():
            raise ValidationError(
                {"slug": [f"An SLO with the slug {slo.slug!r} already exists."]}
            ) from None
        raise Conflict(
            f"The SLO {slo.slug!r} changed at the same time elsewhere; try again."
        ) from None
    return slo


def _evaluation(slo: SLO) -> SLOEvaluation | None:
    try:
        return slo.evaluation
    except SLOEvaluation.DoesNotExist:  # saved around the recorder; due at the next tick
        return None


def _finite(value: float | None) -> float | None:
    # The evaluator stores finite numbers only; a hand-edited row must not turn the
    # whole list into a 500 (JSON has no NaN).
    return value if value is not None and math.isfinite(value) else None


def _burn_rates(stored: Mapping[str, Any] | None) -> dict[str, float | None]:
    """Every burn-rate window, always: null where nothing was measured."""
    stored = stored if isinstance(stored, Mapping) else {}
    rates = {}
    for name in definition.BURN_WINDOWS:
        value = stored.get(name)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        rates[name] = _finite(float(value)) if ok else None
    return rates


# One field for every timestamp: building a DateTimeField per value cost a list of 50
# SLOs a third of its serialisation time (bench/slo.py).
_DATETIME = serializers.DateTimeField()


def _when(at: datetime | None) -> str | None:
    return _DATETIME.to_representation(at) if at else None


class SLOSnapshotSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    status = SLOStatusField()
    sli = serializers.FloatField(allow_null=True, help_text="The SLI as a fraction.")
    budget_remaining = serializers.FloatField(allow_null=True)
    burn_rates = BurnRatesField()
    events = serializers.FloatField(allow_null=True)
    current_value = serializers.FloatField(
        allow_null=True, help_text="rpo and rto: as the SLO's current_value, then."
    )
    trace_id = serializers.CharField()


class SLOHistorySerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    snapshots = SLOSnapshotSerializer(many=True, help_text="In time order, both ends included.")
    truncated = serializers.BooleanField(
        help_text=f"More than {MOST_SNAPSHOTS} snapshots in the span: `next` reads on."
    )
    next = serializers.CharField(
        allow_null=True, help_text="The rest of the span, when truncated; null otherwise."
    )


def history_span(slo: SLO, params: Mapping[str, str], now: datetime) -> tuple[datetime, datetime]:
    """[since, until] asked for; by default the SLO's window as of `until` (now)."""
    raw_since, raw_until = params.get("since"), params.get("until")
    until = query_time(raw_until, "until") if raw_until else now
    if raw_since:
        since = query_time(raw_since, "since")
    else:
        window = definition.Window.named(slo.window, slo.time_zone)
        try:
            since = windows.window_bounds(window, until)[0]
        except (ValueError, OverflowError):
            raise ValidationError({"until": ["That time is out of range."]}) from None
    if since > until:
        raise ValidationError({"since": ["`since` is after `until`."]})
    if until - since > LONGEST_SPAN:
        raise ValidationError(
            {
                "since": [
                    f"At most {LONGEST_SPAN.days} days at once (the history keeps no "
                    "more): ask for a shorter span."
                ]
            }
        )
    return since, until


SNAPSHOT_FIELDS = (
    "at",
    "status",
    "sli",
    "budget_remaining",
    "burn_rates",
    "events",
    "current_value",
    "trace_id",
)

FILTERS = [
    OpenApiParameter("service", OpenApiTypes.STR, description="A service slug."),
    OpenApiParameter("status", OpenApiTypes.STR, enum=SLOEvaluation.Status.values),
]
SPAN = [
    OpenApiParameter(
        "since",
        OpenApiTypes.STR,
        description="ISO 8601 with offset (2026-03-29T01:30:00Z) or unix seconds; "
        "default: the start of the SLO's window as of `until`.",
    ),
    OpenApiParameter(
        "until",
        OpenApiTypes.STR,
        description=f"Likewise; default: now. At most {LONGEST_SPAN.days} days after `since`.",
    ),
]


@extend_schema_view(
    list=extend_schema(parameters=FILTERS),
    create=extend_schema(
        parameters=[ORGANIZATION], responses={201: SLOSerializer, 409: SAVED_CONCURRENTLY}
    ),
    retrieve=extend_schema(parameters=[ORGANIZATION]),
    update=extend_schema(
        parameters=[ORGANIZATION], responses={200: SLOSerializer, 409: SAVED_CONCURRENTLY}
    ),
    partial_update=extend_schema(
        parameters=[ORGANIZATION], responses={200: SLOSerializer, 409: SAVED_CONCURRENTLY}
    ),
    destroy=extend_schema(parameters=[ORGANIZATION], responses={204: None}),
)
class SLOViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    OrganizationScopedViewSet,
):
    """SLOs of the caller's organisation, by slug, with their current status. Writes
    need a write token or a manager's session."""

    # Everything a document and its status name, in the one query.
    queryset = SLO.objects.select_related(
        "organization", "service", "source", "escalation_policy", "runbook", "evaluation"
    ).order_by("organization_id", "slug")
    serializer_class = SLOSerializer
    lookup_field = "slug"

    def get_queryset(self):
        queryset = super().get_queryset()
        if self.action != "list":
            return queryset
        params = self.request.query_params
        status = params.get("status")
        if status is not None:
            if status not in SLOEvaluation.Status.values:
                choices = ", ".join(SLOEvaluation.Status.values)
                raise ValidationError({"status": [f"Choose one of {choices}."]})
            queryset = queryset.filter(evaluation__status=status)
        if params.get("service"):
            queryset = queryset.filter(service__slug=params["service"])
        return queryset

    def get_serializer_context(self) -> dict[str, Any]:
        extra = super().get_serializer_context()
        if self.action == "create":
            extra["organization"] = target_organization(self.request)
        if self.action in ("create", "update", "partial_update"):
            extra["actor"] = self._actor(self.request)
        return extra

    def _actor(self, request: Request) -> Actor:
        if isinstance(request.auth, ApiToken):
            return Actor.token(request.auth)
        return Actor.user(request.user)

    def perform_create(self, serializer: SLOSerializer) -> None:
        serializer.instance = self._fresh(serializer.save())

    def perform_update(self, serializer: SLOSerializer) -> None:
        serializer.instance = self._fresh(serializer.save())

    def _fresh(self, slo: SLO) -> SLO:
        # The answer shows the SLO as a GET reads it, status included.
        return self.get_queryset().get(pk=slo.pk)

    def perform_destroy(self, slo: SLO) -> None:
        editing.delete(slo, self._actor(self.request))

    @extend_schema(parameters=[ORGANIZATION, *SPAN], responses={200: SLOHistorySerializer})
    @action(detail=True, methods=["get"])
    def history(self, request: Request, slug: str | None = None) -> Response:
        """The SLO's snapshots from `since` to `until`, in time order: recent ones as
        evaluated, older ones thinned to one an hour, then one a day (docs/slos.md)."""
        slo = self.get_object()
        since, until = history_span(slo, request.query_params, timezone.now())
        rows = list(
            SLOSnapshot.objects.filter(slo=slo, at__gte=since, at__lte=until)
            .order_by("at", "pk")
            .values(*SNAPSHOT_FIELDS)[: MOST_SNAPSHOTS + 1]
        )
        truncated = len(rows) > MOST_SNAPSHOTS
        rows = rows[:MOST_SNAPSHOTS]
        following = None
        if truncated:
            query = {"since": _when(rows[-1]["at"] + timedelta(microseconds=1))}
            query["until"] = _when(until)
            if request.query_params.get("organization"):
                query["organization"] = request.query_params["organization"]
            following = request.build_absolute_uri(f"{request.path}?{urlencode(query)}")
        return Response(
            {
                "slug": slo.slug,
                "name": slo.name,
                "since": _when(since),
                "until": _when(until),
                "snapshots": [
                    {
                        "at": _when(row["at"]),
                        "status": row["status"],
                        "sli": _finite(row["sli"]),
                        "budget_remaining": _finite(row["budget_remaining"]),
                        "burn_rates": _burn_rates(row["burn_rates"]),
                        "events": _finite(row["events"]),
                        "current_value": _finite(row["current_value"]),
                        "trace_id": row["trace_id"],
                    }
                    for row in rows
                ],
                "truncated": truncated,
                "next": following,
            }
        )
