"""`GET /api/v1/annotations/`: the paging timeline as Grafana annotations.

Grafana's Infinity data source reads it (docs/observability/annotations.md): alerts
opened, acknowledged and resolved, notifications sent or given up, and silences as
bands, in time order, each with the page to open and the trace to follow. A token of
the organisation (read scope is enough) or a signed-in member reads it; a member of
several organisations names one with ?organization=<slug>.

The answer is a bare JSON array (no pagination: Infinity reads one document), at most
`limit` long, the latest moments when there are more. It costs the same few queries
for ten moments as for thousands: one per kind, and two to name the acknowledgers.
Links are built on SITE_URL, the address people open (Grafana fetches from its own
server, under whatever host name reaches us there).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db.models import Case, F, Q, QuerySet, When
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from controlplane import annotations
from controlplane.alerting.models import Alert, AlertEvent, Silence
from controlplane.api.access import readable_organizations
from controlplane.api.fields import query_time_ms
from controlplane.api.scoping import OrganizationScopedViewSet
from controlplane.catalog import actors, tenancy
from controlplane.catalog.models import Organization
from controlplane.paging.models import Notification
from controlplane.trace_links import trace_url

DEFAULT_LIMIT = 500
MOST = 2000
# Without `from`, the day before `to`: what a dashboard opened without a range shows.
DEFAULT_SPAN = timedelta(hours=24)
# Longer than any slug or key the control plane stores: past it, a typo, not a name.
LONGEST_NAME = 200
FILTER_NAMES = ("service", "rule", "slo", "job")


@dataclass(frozen=True)
class Query:
    start: datetime
    end: datetime
    kinds: tuple[str, ...]
    filters: Mapping[str, tuple[str, ...]]  # service, rule, slo, job -> accepted values
    limit: int
    organization: str  # a slug, "" for every organisation the caller reads


def _values(params, name: str) -> list[str]:
    """A repeatable, comma-separated parameter (Grafana's ${var:csv}); empty parts dropped."""
    return [part.strip() for raw in params.getlist(name) for part in raw.split(",") if part.strip()]


def read_query(params, now: datetime) -> Query:
    """The query string, checked; a ValidationError names every refused parameter."""
    errors: dict[str, list[str]] = {}
    span: dict[str, datetime] = {}
    for name in ("from", "to"):
        raw = params.get(name, "")
        if raw.strip():
            try:
                span[name] = query_time_ms(raw, name)
            except ValidationError as error:
                errors.update(error.detail)
    end = span.get("to", now)
    start = span.get("from")
    if start is None:
        try:
            start = end - DEFAULT_SPAN
        except OverflowError:  # `to` within a day of the first instant there is
            start = datetime.min.replace(tzinfo=UTC)
    if not errors and start > end:
        errors["from"] = ["`from` is after `to`."]

    kinds = _values(params, "kind")
    unknown = [kind for kind in kinds if kind not in annotations.KINDS]
    if unknown:
        errors["kind"] = [
            f"Unknown kind {', '.join(map(repr, unknown))}: choose among "
            f"{', '.join(annotations.KINDS)} (repeated or comma-separated)."
        ]

    filters: dict[str, tuple[str, ...]] = {}
    for name in FILTER_NAMES:
        values = _values(params, name)
        if any(len(value) > LONGEST_NAME for value in values):
            errors[name] = [f"A {name} is named in at most {LONGEST_NAME} characters."]
        elif values:
            filters[name] = tuple(dict.fromkeys(values))

    limit = DEFAULT_LIMIT
    raw_limit = params.get("limit", "").strip()
    if raw_limit:
        digits = raw_limit.isascii() and raw_limit.isdigit() and len(raw_limit) <= 6
        if not digits or not 1 <= int(raw_limit) <= MOST:
            errors["limit"] = [f"Give a whole number from 1 to {MOST}."]
        else:
            limit = int(raw_limit)

    organization = params.get("organization", "").strip()
    if len(organization) > LONGEST_NAME:
        errors["organization"] = [f"A slug is at most {LONGEST_NAME} characters."]
    if errors:
        raise ValidationError(errors)
    return Query(
        start=start,
        end=end,
        kinds=tuple(dict.fromkeys(kinds)) or annotations.KINDS,
        filters=filters,
        limit=limit,
        organization=organization,
    )


# --- the rows -----------------------------------------------------------------------------


def _jobs(values: Sequence[str]) -> list[tuple[str, str]]:
    """Job filters as (organisation slug or "", monitor slug): the metrics name a job
    `<organisation>/<monitor>` (controlplane/jobs/metrics.job_label), alerts by its slug."""
    found = []
    for value in values:
        organization, _, slug = value.rpartition("/")
        found.append((organization, slug))
    return found


def alert_condition(filters: Mapping[str, Sequence[str]], prefix: str = "") -> Q:
    """The filters on an alert, as a condition on a model reaching it through `prefix`."""
    condition = Q()
    if "service" in filters:
        condition &= Q(**{f"{prefix}service__slug__in": filters["service"]})
    if "rule" in filters:
        condition &= Q(**{f"{prefix}rule_key__in": filters["rule"]})
    if "slo" in filters:
        condition &= Q(**{f"{prefix}slo__slug__in": filters["slo"]})
    if "job" in filters:
        any_job = Q()
        for organization, slug in _jobs(filters["job"]):
            one = Q(**{f"{prefix}labels__job": slug})
            if organization:
                one &= Q(**{f"{prefix}organization__slug": organization})
            any_job |= one
        condition &= any_job
    return condition


def _page(path: str) -> str:
    return f"{settings.SITE_URL}{path}"


def _facts(alert: Alert) -> annotations.AlertFacts:
    summary = (alert.annotations or {}).get("summary", "")
    return annotations.AlertFacts(
        id=alert.pk,
        organization=alert.organization.slug,
        rule_key=alert.rule_key,
        severity=alert.severity,
        service=alert.service.slug if alert.service is not None else "",
        slo=alert.slo.slug if alert.slo is not None else "",
        labels={k: v for k, v in (alert.labels or {}).items() if isinstance(v, str)},
        summary=summary if isinstance(summary, str) else "",
        is_test=alert.is_test,
        url=_page(reverse("alerts:detail", args=[alert.pk])),
    )


ALERT_RELATED = ("alert__organization", "alert__service", "alert__slo")


def moments(query: Query, scoped: QuerySet) -> list[annotations.AlertMoment]:
    """The alert timeline's openings, acknowledgements and resolutions in the range,
    the latest `limit`, with their actors named as the alert page names them."""
    rows = list(
        scoped.filter(kind__in=annotations.ALERT_EVENTS, at__gte=query.start, at__lte=query.end)
        .filter(alert_condition(query.filters, "alert__"))
        .select_related(*ALERT_RELATED)
        .defer("details", "dispatch_note")
        .order_by("-at", "-pk")[: query.limit]
    )
    names = actors.labels(row.actor for row in rows if row.kind != AlertEvent.Kind.OPENED)
    facts: dict[int, annotations.AlertFacts] = {}
    found = []
    for row in reversed(rows):
        if row.alert_id not in facts:
            facts[row.alert_id] = _facts(row.alert)
        found.append(
            annotations.AlertMoment(
                id=row.pk,
                at=row.at,
                event=row.kind,
                actor=names.get(row.actor, ""),
                note=row.note,
                trace_id=row.trace_id,
                alert=facts[row.alert_id],
            )
        )
    return found


def deliveries(query: Query, scoped: QuerySet) -> list[annotations.Delivery]:
    """Notifications sent (at sent_at) or given up (at the time their last attempt was
    due: the ledger keeps no time of giving up) in the range; a channel's test message,
    about no alert, is left out."""
    sent = Q(state=Notification.State.SENT, sent_at__gte=query.start, sent_at__lte=query.end)
    dead = Q(
        state=Notification.State.DEAD,
        next_attempt_at__gte=query.start,
        next_attempt_at__lte=query.end,
    )
    rows = list(
        scoped.filter(alert__isnull=False)
        .filter(sent | dead)
        .filter(alert_condition(query.filters, "alert__"))
        .annotate(
            moment=Case(
                When(state=Notification.State.SENT, then=F("sent_at")),
                default=F("next_attempt_at"),
            )
        )
        .select_related(*ALERT_RELATED)
        .order_by("-moment", "-pk")[: query.limit]
    )
    facts: dict[int, annotations.AlertFacts] = {}
    found = []
    for row in reversed(rows):
        if row.alert_id not in facts:
            facts[row.alert_id] = _facts(row.alert)
        found.append(
            annotations.Delivery(
                id=row.pk,
                at=row.moment,
                outcome=annotations.SENT
                if row.state == Notification.State.SENT
                else annotations.GIVEN_UP,
                channel=row.channel_name,
                channel_kind=row.channel_kind,
                message=row.event,
                attempts=row.attempts,
                error=row.last_error,
                trace_id=row.trace_id,
                alert=facts[row.alert_id],
            )
        )
    return found


def windows(query: Query, scoped: QuerySet) -> list[annotations.Window]:
    """Silences overlapping the range, the latest-starting `limit` of those whose
    matchers may cover the filtered subjects (read in one query, as a stream)."""
    rows = (
        scoped.filter(starts_at__lte=query.end, ends_at__gte=query.start)
        .select_related("organization")
        .only("pk", "organization__slug", "starts_at", "ends_at", "comment", "matchers")
        .order_by("-starts_at", "-pk")
    )
    found = []
    for row in rows.iterator(chunk_size=500):
        wanted = dict(query.filters)
        if "job" in wanted:
            # A job named with its organisation is not another organisation's.
            slugs = [s for org, s in _jobs(wanted["job"]) if org in ("", row.organization.slug)]
            if not slugs:
                continue
            wanted["job"] = slugs
        if not annotations.could_cover(row.matchers, wanted):
            continue
        found.append(
            annotations.Window(
                id=row.pk,
                organization=row.organization.slug,
                starts_at=row.starts_at,
                ends_at=row.ends_at,
                comment=row.comment,
                matchers=row.matchers if isinstance(row.matchers, list) else [],
                url=_page(reverse("admin:alerting_silence_change", args=[row.pk])),
            )
        )
        if len(found) >= query.limit:
            break
    found.reverse()
    return found


# --- the endpoint ---------------------------------------------------------------------------


class AnnotationSerializer(serializers.Serializer):
    """One annotation, in the columns Grafana's Infinity data source maps."""

    time = serializers.IntegerField(help_text="When, in unix milliseconds.")
    timeEnd = serializers.IntegerField(  # Grafana's column name
        help_text="The end, in unix milliseconds: a silence's end; `time` for a moment."
    )
    title = serializers.CharField()
    text = serializers.CharField(
        allow_blank=True,
        help_text="The alert's summary, the note typed with the change, or why a "
        "notification was given up; plain text (JSON data, never markup of ours).",
    )
    tags = serializers.ListField(
        child=serializers.CharField(),
        help_text="name:value tags: kind, event, organization, rule, severity, service, "
        "slo, job, channel_kind, message; `test` for a test alert.",
    )
    kind = serializers.ChoiceField(choices=annotations.KINDS)
    event = serializers.ChoiceField(
        choices=[*annotations.ALERT_EVENTS, annotations.SENT, annotations.GIVEN_UP, "created"]
    )
    url = serializers.URLField(
        help_text="The page to open: the alert's, or the silence's in the admin."
    )
    trace_id = serializers.CharField(
        allow_blank=True, help_text="The trace of the change or delivery; empty for a silence."
    )
    trace_url = serializers.CharField(
        allow_blank=True, help_text="The trace viewer's page, when TRACE_URL_TEMPLATE is set."
    )


def _listed(name: str, description: str) -> OpenApiParameter:
    return OpenApiParameter(name, OpenApiTypes.STR, description=description, many=True)


PARAMETERS = [
    OpenApiParameter(
        "from",
        OpenApiTypes.STR,
        description="Moments at or after: unix milliseconds (Grafana's ${__from}) or ISO "
        "8601 with its offset. Default: a day before `to`.",
    ),
    OpenApiParameter(
        "to",
        OpenApiTypes.STR,
        description="Moments at or before, likewise (Grafana's ${__to}). Default: now.",
    ),
    _listed(
        "kind",
        f"{', '.join(annotations.KINDS)}; repeated or comma-separated. Default: all of them.",
    ),
    _listed("service", "Service slugs: the annotations of their alerts."),
    _listed("rule", "Rule keys, e.g. api.5xx."),
    _listed("slo", "SLO slugs: the burn-rate alerts they opened."),
    _listed(
        "job",
        "Job monitor slugs, or <organization>/<slug> as the metrics' `job` label names them.",
    ),
    OpenApiParameter(
        "limit",
        OpenApiTypes.INT,
        description=f"At most this many, the latest; 1 to {MOST}, default {DEFAULT_LIMIT}.",
    ),
    OpenApiParameter(
        "organization",
        OpenApiTypes.STR,
        description="One organisation's, for a member of several (by default: all of "
        "the caller's).",
    ),
]


class AnnotationViewSet(OrganizationScopedViewSet):
    """Alerts opened, acknowledged and resolved, notifications sent and given up, and
    silences, as Grafana annotations (time, timeEnd, title, text, tags) in time order."""

    pagination_class = None
    serializer_class = AnnotationSerializer

    @extend_schema(parameters=PARAMETERS, responses={200: AnnotationSerializer(many=True)})
    def list(self, request: Request) -> Response:
        query = read_query(request.query_params, timezone.now())
        allowed = self._organizations(request, query.organization)
        found_moments, found_deliveries, found_windows = [], [], []
        if annotations.ALERT in query.kinds:
            events = tenancy.scope(AlertEvent.objects.all(), allowed, "alert__organization")
            found_moments = moments(query, events)
        if annotations.NOTIFICATION in query.kinds:
            found_deliveries = deliveries(query, tenancy.scope(Notification.objects.all(), allowed))
        if annotations.SILENCE in query.kinds:
            found_windows = windows(query, tenancy.scope(Silence.objects.all(), allowed))
        return Response(
            annotations.assemble(
                found_moments, found_deliveries, found_windows, trace_url, query.limit
            )
        )

    def _organizations(self, request: Request, slug: str) -> set[int] | None:
        """The organisations read: the caller's, or the one named among them."""
        readable = readable_organizations(request)
        if not slug:
            return readable
        named = tenancy.scope(Organization.objects.filter(slug=slug), readable, field="pk")
        found = set(named.values_list("pk", flat=True))
        if not found:
            # The same words whether the slug is another's or nobody's: nothing leaks.
            raise ValidationError(
                {"organization": [f"None of your organisations has the slug {slug!r}."]}
            )
        return found
