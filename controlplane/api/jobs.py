"""Job monitors as code, with what their pings last reported, their runs, and a way in for
clients that hold an API token rather than a ping URL.

A monitor is `{"slug", "name", "kind", "service", "schedule", "time_zone", "grace",
"min_duration", "max_duration", "runbook", "escalation_policy"}`. `schedule` is one text:
a Prometheus duration ("1h", "1d") is a period, anything else a cron expression read
in `time_zone` (controlplane/jobs/forms.py read_schedule); durations are Prometheus
durations ("15m"). It is checked by the model's clean(), as the admin checks it, and a
refusal names the document's field ("schedule", "grace", "min_duration").

Read-only: `status`, `last_start`, `last_success`, `last_failure`, `next_expected` (from
the monitor's state, written by pings and the overdue check only) and `ping_url`, the
monitor's success URL. The key in that URL lets whoever holds it report runs, as a
Healthchecks ping key does, so it is shown to those who may write in the monitor's
organisation (managers, write tokens) and null to the others, as Healthchecks' read-only
API keys see no ping URLs.

`POST /jobs/<slug>/start/`, `/success/`, `/fail/` report a run with a write token
(optional body `{"run_id", "exit_code", "log"}`), through the one recorder of pings
(controlplane.jobs.runs.record_ping), exactly as the ping URLs do.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import mixins, serializers
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from controlplane.api.access import target_organization, writable_organizations
from controlplane.api.bodies import StrictBody
from controlplane.api.errors import Conflict
from controlplane.api.rules import PrometheusDuration, _runbooks
from controlplane.api.schema import ORGANIZATION, SAVED_CONCURRENTLY
from controlplane.api.scoping import OrganizationScopedViewSet
from controlplane.catalog.actors import Actor
from controlplane.catalog.models import ApiToken, Organization, Service
from controlplane.catalog.validators import contains_surrogate
from controlplane.jobs.forms import duration_text, read_schedule, schedule_text
from controlplane.jobs.models import (
    EXCERPT_LIMIT,
    SLUG,
    JobMonitor,
    JobMonitorState,
    JobRun,
    PingKey,
)
from controlplane.paging.models import EscalationPolicy
from controlplane.trace_links import trace_url
from observability import tracing

# Model field -> the document's field, where they differ.
MODEL_NAMES = {"cron": "schedule", "period": "schedule", "schedule_kind": "schedule"}
# What a POST leaves out takes these values (the model's defaults); a PATCH keeps them.
DEFAULTS: dict[str, Any] = {
    "service": None,
    "runbook": None,
    "escalation_policy": None,
    "min_duration": None,
    "max_duration": None,
}
WHEN = {"type": "string", "format": "date-time", "nullable": True}
PING_KINDS = ("start", "success", "fail")


@extend_schema_field({"type": "string", "pattern": SLUG.regex.pattern, "example": "payroll-export"})
class JobSlugField(serializers.CharField):
    pass


@extend_schema_field(
    {
        "type": "string",
        "example": "0 2 * * *",
        "description": "A cron expression (five fields, read in `time_zone`), e.g. "
        '"0 2 * * *"; or a period as a Prometheus duration, e.g. "1h", "1d": a text '
        "that reads as a duration is a period.",
    }
)
class ScheduleField(serializers.CharField):
    pass


@extend_schema_field({"type": "string", "example": "15m"})
class DurationField(PrometheusDuration):
    pass


@extend_schema_field({"type": "string", "example": "15m", "nullable": True})
class OptionalDurationField(PrometheusDuration):
    pass


# Wrapped in oneOf: drf-spectacular's enum hook would name a bare enum after its field,
# "status", which the SLOs' status already names.
@extend_schema_field({"oneOf": [{"type": "string", "enum": JobMonitorState.Status.values}]})
class JobStatusField(serializers.CharField):
    pass


@extend_schema_field({"type": "string", "enum": JobRun.Outcome.values, "nullable": True})
class OutcomeField(serializers.CharField):
    pass


def refuse_surrogates(data: Mapping[str, Any]) -> None:
    """A lone surrogate (JSON can spell \\ud800) has no UTF-8: refused, naming its field,
    before a lookup or a write sends it to the database."""
    errors = {
        name: ["It contains a surrogate character (U+D800 to U+DFFF)."]
        for name, value in data.items()
        if contains_surrogate(value)
    }
    if errors:
        raise ValidationError(errors)


class JobSerializer(StrictBody, serializers.Serializer):
    """A job monitor, and what its pings last reported (read-only). Fields not listed
    here are refused: the 400 answer names them."""

    slug = JobSlugField(
        max_length=64, help_text="Unique in the organisation, and part of the ping URL: it "
        "cannot change.",
    )  # fmt: skip
    name = serializers.CharField(max_length=200)
    kind = serializers.CharField(
        max_length=32,
        required=False,
        help_text="etl, payroll, equipment, backup, restore, maintenance, or your own word "
        "(default etl). Failures of etl, payroll and equipment jobs page (etl.job.failure).",
    )
    service = serializers.CharField(required=False, allow_null=True, help_text="A service slug.")
    schedule = ScheduleField(max_length=200)
    time_zone = serializers.CharField(
        max_length=64, required=False, help_text="IANA name a cron schedule is read in (UTC)."
    )
    grace = DurationField(
        required=False, help_text="How late a run may start before the monitor is late (15m)."
    )
    min_duration = OptionalDurationField(
        required=False, allow_null=True, help_text="A run shorter than this is too fast."
    )
    max_duration = OptionalDurationField(
        required=False, allow_null=True, help_text="A run longer than this timed out."
    )
    runbook = serializers.CharField(required=False, allow_null=True, help_text="A runbook slug.")
    escalation_policy = serializers.CharField(
        required=False,
        allow_null=True,
        help_text="An escalation policy's slug; null: the organisation's default policy.",
    )

    # The pings' and the overdue check's (JobMonitorState): read here, never written.
    status = JobStatusField(read_only=True)
    last_start = serializers.DateTimeField(read_only=True, allow_null=True)
    last_success = serializers.DateTimeField(read_only=True, allow_null=True)
    last_failure = serializers.DateTimeField(read_only=True, allow_null=True)
    next_expected = serializers.DateTimeField(
        read_only=True, allow_null=True, help_text="When the next run should start."
    )
    ping_url = serializers.CharField(
        read_only=True,
        allow_null=True,
        help_text="The success URL Healthchecks clients ping (append /start, /fail, /log, "
        "/<exit-status>). Its key lets anyone report runs: null for callers who may not "
        "write in the organisation.",
    )
    url = serializers.CharField(read_only=True, help_text="The monitor's page.")

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        # Read-only fields a client sends back (a document read with GET) are known to
        # StrictBody and left out here, as DRF leaves them out.
        if isinstance(data, Mapping):
            refuse_surrogates(data)
        return super().to_internal_value(data)

    def to_representation(self, monitor: JobMonitor) -> dict[str, Any]:
        state = _state(monitor)
        request = self.context.get("request")
        page = monitor.get_absolute_url()
        return {
            "slug": monitor.slug,
            "name": monitor.name,
            "kind": monitor.kind,
            "service": monitor.service.slug if monitor.service_id else None,
            "schedule": schedule_text(monitor),
            "time_zone": monitor.time_zone,
            "grace": duration_text(monitor.grace),
            "min_duration": duration_text(monitor.min_duration),
            "max_duration": duration_text(monitor.max_duration),
            "runbook": monitor.runbook.slug if monitor.runbook_id else None,
            "escalation_policy": (
                monitor.escalation_policy.slug if monitor.escalation_policy_id else None
            ),
            "status": state.status if state else JobMonitorState.Status.NEW,
            "last_start": _when(state.last_start if state else None),
            "last_success": _when(state.last_success if state else None),
            "last_failure": _when(state.last_failure if state else None),
            "next_expected": _when(state.next_expected if state else None),
            "ping_url": ping_url(monitor) if self._reveals(monitor) else None,
            "url": request.build_absolute_uri(page) if request is not None else page,
        }

    def _reveals(self, monitor: JobMonitor) -> bool:
        writable = self.context.get("writable", set())
        return writable is None or monitor.organization_id in writable

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if self.instance is None:
            organization: Organization = self.context["organization"]
            monitor = JobMonitor(organization=organization)
            values = dict(DEFAULTS)
        else:
            organization = self.instance.organization
            monitor = JobMonitor.objects.get(pk=self.instance.pk)
            values = {}
            if "slug" in attrs and attrs["slug"] != monitor.slug:
                raise ValidationError(
                    {"slug": ["The slug cannot change: it is in the monitor's ping URL."]}
                )
        values.update(attrs)
        if "schedule" in values:
            try:
                kind, cron, period = read_schedule(values.pop("schedule"))
            except ValueError as error:
                raise ValidationError({"schedule": [str(error)]}) from None
            values.update(schedule_kind=kind, cron=cron, period=period)
        values.update(_related(organization, attrs))
        for field, value in values.items():
            setattr(monitor, field, value)
        _check_slug_is_free(monitor)
        try:
            monitor.full_clean(exclude=["ping_key"])
        except DjangoValidationError as error:
            raise ValidationError(_api_errors(error)) from None
        return {"monitor": monitor}

    def create(self, validated_data: dict[str, Any]) -> JobMonitor:
        monitor = validated_data["monitor"]
        monitor.ping_key = default_ping_key(monitor.organization)
        return _save(monitor, self.context["actor"])

    def update(self, instance: JobMonitor, validated_data: dict[str, Any]) -> JobMonitor:
        return _save(validated_data["monitor"], self.context["actor"])


def _state(monitor: JobMonitor) -> JobMonitorState | None:
    try:
        return monitor.state
    except JobMonitorState.DoesNotExist:  # saved around the API and the admin
        return None


def _when(at: datetime | None) -> str | None:
    return serializers.DateTimeField().to_representation(at) if at else None


def ping_url(monitor: JobMonitor) -> str | None:
    """The monitor's success URL, {SITE_URL}/ping/<key>/<slug>; None without a key."""
    if not monitor.ping_key_id:
        return None
    return f"{settings.SITE_URL}/ping/{monitor.ping_key.key}/{monitor.slug}"


def default_ping_key(organization: Organization) -> PingKey:
    """The organisation's key named "default", made the first time one is needed."""
    key, _ = PingKey.objects.get_or_create(organization=organization, name="default")
    return key


def _related(organization: Organization, attrs: dict[str, Any]) -> dict[str, Any]:
    """The service, runbook and policy named by slug, within the organisation only."""
    lookups = {
        "service": lambda slug: Service.objects.filter(organization=organization, slug=slug),
        "runbook": lambda slug: _runbooks(organization, slug),
        "escalation_policy": lambda slug: EscalationPolicy.objects.filter(
            organization=organization, slug=slug
        ),
    }
    found: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for field, lookup in lookups.items():
        if field not in attrs:
            continue
        name = attrs[field]
        if name in (None, ""):
            found[field] = None
            continue
        obj = lookup(name).first()
        if obj is None:
            errors[field] = [f"Unknown {field.replace('_', ' ')} {name!r} in this organisation."]
        found[field] = obj
    if errors:
        raise ValidationError(errors)
    return found


def _check_slug_is_free(monitor: JobMonitor) -> None:
    taken = JobMonitor.objects.filter(organization_id=monitor.organization_id, slug=monitor.slug)
    if monitor.pk:
        taken = taken.exclude(pk=monitor.pk)
    if taken.exists():
        raise ValidationError({"slug": [f"A job monitor with the slug {monitor.slug!r} exists."]})


def _api_errors(error: DjangoValidationError) -> dict[str, list[str]]:
    if not hasattr(error, "error_dict"):
        return {"non_field_errors": error.messages}
    errors: dict[str, list[str]] = {}
    for field, messages in error.message_dict.items():
        name = MODEL_NAMES.get(field, "non_field_errors" if field == "__all__" else field)
        errors.setdefault(name, []).extend(messages)
    return errors


def _save(monitor: JobMonitor, actor: Actor) -> JobMonitor:
    """Save through the recorder (jobs.editing: the state row, a schedule edit moving the
    next expected run); a slug taken concurrently is refused like any duplicate."""
    from controlplane.jobs import editing

    try:
        with transaction.atomic():
            editing.save(monitor, actor)
    except IntegrityError:
        _check_slug_is_free(monitor)
        raise Conflict(
            f"The job monitor {monitor.slug!r} changed at the same time elsewhere; try again."
        ) from None
    return monitor


# --- runs ------------------------------------------------------------------------------


class JobRunSerializer(serializers.Serializer):
    run_id = serializers.UUIDField(allow_null=True, help_text="The client's run id, if any.")
    started_at = serializers.DateTimeField(allow_null=True, help_text="Null: a missed run.")
    finished_at = serializers.DateTimeField(allow_null=True, help_text="Null while running.")
    outcome = OutcomeField(help_text="Null while running.")
    duration = serializers.FloatField(allow_null=True, help_text="Seconds.")
    exit_code = serializers.IntegerField(allow_null=True)
    excerpt = serializers.CharField(help_text=f"The last {EXCERPT_LIMIT} characters of its log.")
    excerpt_truncated = serializers.BooleanField(help_text="The log was longer than that.")
    too_early = serializers.BooleanField(help_text="Started before the schedule allowed.")
    trace_id = serializers.CharField(help_text="The run's trace; empty without one.")
    trace_url = serializers.CharField(
        help_text="The trace viewer, when configured and the run has a trace; empty otherwise."
    )

    def to_representation(self, run: JobRun) -> dict[str, Any]:
        return {
            "run_id": str(run.run_id) if run.run_id else None,
            "started_at": _when(run.started_at),
            "finished_at": _when(run.finished_at),
            "outcome": run.outcome or None,
            "duration": run.duration.total_seconds() if run.duration is not None else None,
            "exit_code": run.exit_code,
            "excerpt": run.excerpt,
            "excerpt_truncated": run.excerpt_truncated,
            "too_early": run.too_early,
            "trace_id": run.trace_id,
            "trace_url": trace_url(run.trace_id),
        }


class PingBody(StrictBody, serializers.Serializer):
    """What a run reports, all optional: send an empty object, or no body."""

    run_id = serializers.UUIDField(
        required=False,
        allow_null=True,
        help_text="Pairs a start with its finish when runs overlap (Healthchecks' ?rid=); "
        "the same run id reported twice records once.",
    )
    exit_code = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=0,
        max_value=255,
        help_text="0 with /success, 1-255 with /fail; none with /start.",
    )
    log = serializers.CharField(
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        help_text=f"The run's output; its last {EXCERPT_LIMIT} characters are kept.",
    )

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if isinstance(data, Mapping):
            refuse_surrogates(data)
        return super().to_internal_value(data)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        kind, code = self.context["kind"], attrs.get("exit_code")
        if code is None:
            return attrs
        if kind == "start":
            raise ValidationError({"exit_code": ["A start has no exit code yet."]})
        if kind == "success" and code != 0:
            raise ValidationError(
                {"exit_code": [f"A success exits with 0; report exit code {code} to /fail/."]}
            )
        if kind == "fail" and code == 0:
            raise ValidationError(
                {"exit_code": ["Exit code 0 is a success; report it to /success/."]}
            )
        return attrs


PING_ANSWER = inline_serializer(
    "JobPingAnswer",
    {
        "slug": serializers.CharField(),
        "status": JobStatusField(help_text="The monitor's status after the ping."),
        "run": JobRunSerializer(
            allow_null=True, help_text="The run the ping started or finished, if any."
        ),
    },
)


def ping_from(kind: str, body: Mapping[str, Any], at: datetime) -> Any:
    """The recorder's Ping of a report: the log's tail kept, the request's trace joined
    (the client's own, when it sent a traceparent)."""
    from controlplane.jobs.runs import Ping

    log = body.get("log") or ""
    return Ping(
        kind=kind,
        at=at,
        exit_code=body.get("exit_code"),
        run_id=body.get("run_id"),
        body=log[-EXCERPT_LIMIT:],
        body_truncated=len(log) > EXCERPT_LIMIT,
        trace_id=tracing.current_trace_id() or "",
        span_id=tracing.current_span_id() or "",
    )


FILTERS = [
    OpenApiParameter("service", OpenApiTypes.STR, description="A service slug."),
    OpenApiParameter("kind", OpenApiTypes.STR, description="etl, payroll, backup..."),
    OpenApiParameter("status", OpenApiTypes.STR, enum=JobMonitorState.Status.values),
]


@extend_schema_view(
    list=extend_schema(parameters=FILTERS),
    create=extend_schema(
        parameters=[ORGANIZATION], responses={201: JobSerializer, 409: SAVED_CONCURRENTLY}
    ),
    retrieve=extend_schema(parameters=[ORGANIZATION]),
    partial_update=extend_schema(
        parameters=[ORGANIZATION], responses={200: JobSerializer, 409: SAVED_CONCURRENTLY}
    ),
    destroy=extend_schema(parameters=[ORGANIZATION], responses={204: None}),
)
class JobViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    OrganizationScopedViewSet,
):
    """Job monitors of the caller's organisation, by slug, with their status. Writes
    and run reports need a write token or a manager's session."""

    # Everything a monitor and its status name, in the one query.
    queryset = JobMonitor.objects.select_related(
        "organization", "service", "runbook", "escalation_policy", "ping_key", "state"
    ).order_by("organization_id", "slug")
    serializer_class = JobSerializer
    lookup_field = "slug"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        queryset = super().get_queryset()
        if self.action != "list":
            return queryset
        params = self.request.query_params
        status = params.get("status")
        if status is not None:
            if status not in JobMonitorState.Status.values:
                choices = ", ".join(JobMonitorState.Status.values)
                raise ValidationError({"status": [f"Choose one of {choices}."]})
            if status == JobMonitorState.Status.NEW:
                # A monitor saved around the API has no state row yet: it is new too.
                queryset = queryset.filter(Q(state__isnull=True) | Q(state__status=status))
            else:
                queryset = queryset.filter(state__status=status)
        if params.get("kind"):
            queryset = queryset.filter(kind=params["kind"])
        if params.get("service"):
            queryset = queryset.filter(service__slug=params["service"])
        return queryset

    def get_serializer_context(self) -> dict[str, Any]:
        extra = super().get_serializer_context()
        extra["writable"] = writable_organizations(self.request)
        if self.action == "create":
            extra["organization"] = target_organization(self.request)
        if self.request is not None and self.request.user.is_authenticated:
            extra["actor"] = self._actor(self.request)
        return extra

    def perform_create(self, serializer: JobSerializer) -> None:
        serializer.instance = self._fresh(serializer.save())

    def perform_update(self, serializer: JobSerializer) -> None:
        serializer.instance = self._fresh(serializer.save())

    def _fresh(self, monitor: JobMonitor) -> JobMonitor:
        # The answer shows the monitor as a GET reads it, status included.
        return self.get_queryset().get(pk=monitor.pk)

    def _actor(self, request: Request) -> Actor:
        if isinstance(request.auth, ApiToken):
            return Actor.token(request.auth)
        return Actor.user(request.user)

    @extend_schema(parameters=[ORGANIZATION], responses={200: JobRunSerializer(many=True)})
    @action(detail=True, methods=["get"])
    def runs(self, request: Request, slug: str | None = None) -> Response:
        """The monitor's runs, newest first, paginated."""
        monitor = self.get_object()
        runs = JobRun.objects.filter(monitor=monitor).order_by("-created_at", "-pk")
        page = self.paginate_queryset(runs)
        return self.get_paginated_response(JobRunSerializer(page, many=True).data)

    def _report(self, request: Request, kind: str) -> Response:
        from controlplane.jobs import runs

        monitor = self.get_object()
        body = PingBody(data=request.data, context={"kind": kind})
        body.is_valid(raise_exception=True)
        run = runs.record_ping(
            monitor, ping_from(kind, body.validated_data, timezone.now()), self._actor(request)
        )
        state = JobMonitorState.objects.filter(monitor=monitor).first()
        return Response(
            {
                "slug": monitor.slug,
                "status": state.status if state else JobMonitorState.Status.NEW,
                "run": JobRunSerializer(run).data if run is not None else None,
            }
        )

    @extend_schema(request=PingBody, parameters=[ORGANIZATION], responses={200: PING_ANSWER})
    @action(detail=True, methods=["post"])
    def start(self, request: Request, slug: str | None = None) -> Response:
        """A run started (Healthchecks' /start): its duration is measured from here."""
        return self._report(request, "start")

    @extend_schema(request=PingBody, parameters=[ORGANIZATION], responses={200: PING_ANSWER})
    @action(detail=True, methods=["post"])
    def success(self, request: Request, slug: str | None = None) -> Response:
        """A run finished well (the plain ping URL)."""
        return self._report(request, "success")

    @extend_schema(request=PingBody, parameters=[ORGANIZATION], responses={200: PING_ANSWER})
    @action(detail=True, methods=["post"])
    def fail(self, request: Request, slug: str | None = None) -> Response:
        """A run failed (Healthchecks' /fail)."""
        return self._report(request, "fail")
