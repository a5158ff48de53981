"""On-call schedules of the caller's organisation, by slug, and who is on call.

A schedule is `{"slug", "name", "time_zone", "ics_url" or "ics_text",
"override_ics_url" or "override_ics_text", "sync_interval"}`, checked as the admin
checks it (a calendar URL naming a private address is refused). Read-only:
`last_synced_at`, `last_error` (with `last_error_at`), `unknown_names` (names events
give that are no member) and `gap`: when nobody will be on call, now or within the
next 24 hours (null: someone always is).

Every write makes the schedule due: the next beat run (within 30 s) reads its
calendars; `POST .../sync/` asks for that run at once.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.db.models import Prefetch
from django.utils import timezone
from django.utils.dateparse import parse_datetime
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

from controlplane.api.access import target_organization
from controlplane.api.bodies import StrictBody
from controlplane.api.errors import Conflict
from controlplane.api.rules import PrometheusDuration
from controlplane.api.schema import ORGANIZATION, SAVED_CONCURRENTLY
from controlplane.api.scoping import OrganizationScopedViewSet
from controlplane.oncall import rota, synchronize
from controlplane.oncall.models import OnCallSchedule, ScheduleSync, Shift
from controlplane.oncall.views import as_rota

WRITABLE = [
    "slug",
    "name",
    "time_zone",
    "ics_url",
    "ics_text",
    "override_ics_url",
    "override_ics_text",
    "sync_interval",
]
# What a POST leaves out takes these values.
DEFAULTS = {"ics_url": "", "ics_text": "", "override_ics_url": "", "override_ics_text": ""}
WHEN = {"type": "string", "format": "date-time", "nullable": True}


class ScheduleSerializer(StrictBody, serializers.Serializer):
    """An on-call schedule. Fields not listed here are refused: the 400 answer names
    them."""

    slug = serializers.SlugField(max_length=64, help_text="Unique in the organisation.")
    name = serializers.CharField(max_length=200)
    time_zone = serializers.CharField(
        max_length=64, required=False, help_text="IANA name; floating times are read in it."
    )
    ics_url = serializers.CharField(max_length=2000, required=False, allow_blank=True)
    ics_text = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    override_ics_url = serializers.CharField(max_length=2000, required=False, allow_blank=True)
    override_ics_text = serializers.CharField(
        required=False, allow_blank=True, trim_whitespace=False
    )
    sync_interval = PrometheusDuration(required=False, help_text='e.g. "15m" (the default).')
    last_synced_at = serializers.SerializerMethodField()
    last_error = serializers.SerializerMethodField()
    last_error_at = serializers.SerializerMethodField()
    unknown_names = serializers.SerializerMethodField()
    gap = serializers.SerializerMethodField(
        help_text="When nobody is on call, now or within the next 24 hours; null: "
        "someone always is."
    )

    def _sync(self, schedule: OnCallSchedule) -> ScheduleSync | None:
        try:
            return schedule.sync
        except ScheduleSync.DoesNotExist:
            return None

    @extend_schema_field(WHEN)
    def get_last_synced_at(self, schedule: OnCallSchedule) -> datetime | None:
        state = self._sync(schedule)
        return state.last_synced_at if state else None

    def get_last_error(self, schedule: OnCallSchedule) -> str:
        state = self._sync(schedule)
        return state.last_error if state else ""

    @extend_schema_field(WHEN)
    def get_last_error_at(self, schedule: OnCallSchedule) -> datetime | None:
        state = self._sync(schedule)
        return state.last_error_at if state and state.last_error else None

    def get_unknown_names(self, schedule: OnCallSchedule) -> list[str]:
        state = self._sync(schedule)
        return list(state.unknown_names) if state else []

    @extend_schema_field(WHEN)
    def get_gap(self, schedule: OnCallSchedule) -> datetime | None:
        shifts = getattr(schedule, "next_day", None)
        if shifts is None:
            shifts = list(_next_day(Shift.objects.filter(schedule=schedule)))
        return rota.first_gap([as_rota(s) for s in shifts], self.context["now"])

    def validate(self, attrs: dict) -> dict:
        if self.instance is None:
            schedule = OnCallSchedule(organization=self.context["organization"], **DEFAULTS)
        else:
            schedule = OnCallSchedule.objects.get(pk=self.instance.pk)
        for name, value in attrs.items():
            setattr(schedule, name, value)
        self._check_slug_is_free(schedule)
        try:
            schedule.full_clean(exclude=["organization", "export_key"])
        except DjangoValidationError as error:
            raise ValidationError(_api_errors(error)) from None
        return {"schedule": schedule}

    def _check_slug_is_free(self, schedule: OnCallSchedule) -> None:
        taken = OnCallSchedule.objects.filter(
            organization_id=schedule.organization_id, slug=schedule.slug
        ).exclude(pk=schedule.pk)
        if taken.exists():
            raise ValidationError(
                {"slug": [f"A schedule with the slug {schedule.slug!r} already exists."]}
            )

    def _save(self, schedule: OnCallSchedule) -> OnCallSchedule:
        created = schedule.pk is None
        try:
            with transaction.atomic():
                if created:
                    schedule.save()
                else:
                    schedule.save(update_fields=[*WRITABLE, "updated_at"])
                synchronize.mark_due(schedule)
        except IntegrityError:
            self._check_slug_is_free(schedule)
            raise Conflict(
                f"The schedule {schedule.slug!r} changed at the same time elsewhere; try again."
            ) from None
        synchronize.nudge()
        return schedule

    def create(self, validated_data: dict) -> OnCallSchedule:
        return self._save(validated_data["schedule"])

    def update(self, instance: OnCallSchedule, validated_data: dict) -> OnCallSchedule:
        return self._save(validated_data["schedule"])


def _api_errors(error: DjangoValidationError) -> dict[str, list[str]]:
    if not hasattr(error, "error_dict"):
        return {"non_field_errors": error.messages}
    return {
        "non_field_errors" if field == "__all__" else field: messages
        for field, messages in error.message_dict.items()
    }


def _next_day(shifts):
    now = timezone.now()
    return shifts.filter(end__gt=now, start__lt=now + rota.GAP_LOOKAHEAD)


AT = OpenApiParameter(
    "at",
    OpenApiTypes.DATETIME,
    description="An RFC 3339 time, e.g. 2026-03-29T01:30:00Z; now when left out.",
)
ON_CALL = inline_serializer(
    "OnCall",
    {
        "schedule": inline_serializer(
            "OnCallSchedule", {"slug": serializers.CharField(), "name": serializers.CharField()}
        ),
        "at": serializers.DateTimeField(),
        "responders": inline_serializer(
            "OnCallResponder",
            {"username": serializers.CharField(), "email": serializers.CharField()},
            many=True,
        ),
    },
)
SYNC_QUEUED = inline_serializer("SyncQueued", {"detail": serializers.CharField()})


class SyncBody(StrictBody, serializers.Serializer):
    """No fields: send an empty object, or no body."""


@extend_schema_view(
    create=extend_schema(
        parameters=[ORGANIZATION], responses={201: ScheduleSerializer, 409: SAVED_CONCURRENTLY}
    ),
    retrieve=extend_schema(parameters=[ORGANIZATION]),
    partial_update=extend_schema(
        parameters=[ORGANIZATION], responses={200: ScheduleSerializer, 409: SAVED_CONCURRENTLY}
    ),
    destroy=extend_schema(parameters=[ORGANIZATION], responses={204: None}),
)
class ScheduleViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    OrganizationScopedViewSet,
):
    """On-call schedules read from ICS calendars. Writes need a write token or a
    manager's session."""

    serializer_class = ScheduleSerializer
    lookup_field = "slug"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        self.queryset = (
            OnCallSchedule.objects.select_related("sync")
            .prefetch_related(
                Prefetch("shifts", queryset=_next_day(Shift.objects.all()), to_attr="next_day")
            )
            .order_by("organization_id", "slug")
        )
        return super().get_queryset()

    def get_serializer_context(self) -> dict:
        extra = super().get_serializer_context()
        extra["now"] = timezone.now()
        if self.action == "create":
            extra["organization"] = target_organization(self.request)
        return extra

    def perform_create(self, serializer: ScheduleSerializer) -> None:
        serializer.instance = self._fresh(serializer.save())

    def perform_update(self, serializer: ScheduleSerializer) -> None:
        serializer.instance = self._fresh(serializer.save())

    def _fresh(self, schedule: OnCallSchedule) -> OnCallSchedule:
        # The answer shows the schedule as a GET reads it.
        return self.get_queryset().get(pk=schedule.pk)

    @extend_schema(parameters=[ORGANIZATION, AT], responses={200: ON_CALL})
    @action(detail=True, methods=["get"], url_path="oncall")
    def on_call(self, request: Request, slug: str | None = None) -> Response:
        """Who is on call at `at` (now when left out), overrides applied: one
        responder, two during a handover in the repeated hour of a DST change, or none."""
        schedule = self.get_object()
        at = _moment(request.query_params.get("at"))
        shifts = list(
            Shift.objects.filter(schedule=schedule, start__lte=at, end__gt=at).select_related(
                "responder__user"
            )
        )
        users = {s.responder_id: s.responder.user for s in shifts}
        on = rota.who_is_on_call([as_rota(s) for s in shifts], at)
        return Response(
            {
                "schedule": {"slug": schedule.slug, "name": schedule.name},
                "at": at.isoformat().replace("+00:00", "Z"),
                "responders": [
                    {"username": users[r].get_username(), "email": users[r].email} for r in on
                ],
            }
        )

    @extend_schema(request=SyncBody, parameters=[ORGANIZATION], responses={202: SYNC_QUEUED})
    @action(detail=True, methods=["post"], url_path="sync")
    def sync(self, request: Request, slug: str | None = None) -> Response:
        """Read the schedule's calendars at once (within seconds, by a worker); its
        `last_synced_at` and `last_error` say how it went."""
        schedule = self.get_object()
        SyncBody(data=request.data).is_valid(raise_exception=True)
        synchronize.mark_due(schedule)
        synchronize.nudge()
        return Response(
            {"detail": f"The schedule {schedule.slug!r} will be synchronised within seconds."},
            status=202,
        )


def _moment(raw: str | None) -> datetime:
    if not raw:
        return timezone.now()
    try:
        parsed = parse_datetime(raw.strip())
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise ValidationError(
            {"at": ["Give an RFC 3339 time with its offset, e.g. 2026-03-29T01:30:00Z."]}
        )
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is before the first instant
        raise ValidationError({"at": ["That time is out of range."]}) from None
