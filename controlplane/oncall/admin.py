"""Schedules and responders in the admin, behind the organisation walls. A schedule's
synchronisation state is shown, never edited: the synchroniser writes it."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from controlplane.catalog import tenancy
from controlplane.catalog.admin import OrganizationScopedAdmin
from controlplane.catalog.models import Membership
from controlplane.oncall import rota, synchronize
from controlplane.oncall.models import OnCallSchedule, Responder, Shift
from controlplane.oncall.views import as_rota


def _when(moment) -> str:
    return f"{timezone.localtime(moment):%Y-%m-%d %H:%M}" if moment else "never"


@admin.register(OnCallSchedule)
class OnCallScheduleAdmin(OrganizationScopedAdmin):
    list_display = ["slug", "name", "organization", "last_sync", "sync_error", "gap_warning"]
    search_fields = ["slug", "name"]
    list_select_related = ["organization", "sync"]
    readonly_fields = ["last_sync", "sync_error", "unknown_names", "gap_warning", "export_link"]
    actions = ["synchronise_now"]

    def get_fields(self, request: HttpRequest, obj=None) -> list[str]:
        fields = [
            "organization",
            "slug",
            "name",
            "time_zone",
            "ics_url",
            "ics_text",
            "override_ics_url",
            "override_ics_text",
            "sync_interval",
        ]
        if obj is not None:
            fields += ["last_sync", "sync_error", "unknown_names", "gap_warning", "export_link"]
        return fields

    def get_queryset(self, request: HttpRequest):
        # The shifts of the next day, for the gap warning: one query for the page.
        now = timezone.now()
        return (
            super()
            .get_queryset(request)
            .prefetch_related(
                Prefetch(
                    "shifts",
                    queryset=Shift.objects.filter(end__gt=now, start__lt=now + rota.GAP_LOOKAHEAD),
                    to_attr="next_day",
                )
            )
        )

    def save_model(self, request: HttpRequest, obj: OnCallSchedule, form, change: bool) -> None:
        super().save_model(request, obj, form, change)
        synchronize.mark_due(obj)
        synchronize.nudge()

    @admin.display(description="last synchronised")
    def last_sync(self, schedule: OnCallSchedule) -> str:
        state = getattr(schedule, "sync", None)
        return _when(state.last_synced_at if state else None)

    @admin.display(description="error")
    def sync_error(self, schedule: OnCallSchedule) -> str:
        state = getattr(schedule, "sync", None)
        if state is None or not state.last_error:
            return "—"
        return (
            f"FAILING ({state.consecutive_failures} in a row, last {_when(state.last_error_at)}): "
            f"{state.last_error}; the last good shifts are kept"
        )

    @admin.display(description="unknown names")
    def unknown_names(self, schedule: OnCallSchedule) -> str:
        state = getattr(schedule, "sync", None)
        return "\n".join(state.unknown_names) if state and state.unknown_names else "—"

    @admin.display(description="gap")
    def gap_warning(self, schedule: OnCallSchedule) -> str:
        shifts = getattr(schedule, "next_day", None)
        if shifts is None:
            shifts = list(schedule.shifts.filter(end__gt=timezone.now()))
        gap = rota.first_gap([as_rota(s) for s in shifts], timezone.now())
        return f"NOBODY ON CALL from {_when(gap)}" if gap else "—"

    @admin.display(description="ICS export")
    def export_link(self, schedule: OnCallSchedule) -> str:
        return schedule.export_path()

    @admin.action(description="Synchronise now")
    def synchronise_now(self, request: HttpRequest, queryset: QuerySet) -> None:
        managed = tenancy.scope(
            queryset, tenancy.organization_ids(request.user, tenancy.MANAGE_ROLES)
        )
        chosen = list(managed)
        for schedule in chosen:
            synchronize.mark_due(schedule)
        synchronize.nudge()
        self.message_user(
            request,
            f"{len(chosen)} schedule(s) will be synchronised within seconds; "
            "their last sync and error show here.",
            messages.SUCCESS,
        )


@admin.register(Responder)
class ResponderAdmin(OrganizationScopedAdmin):
    list_display = ["user", "organization", "time_zone", "slack_member_id"]
    search_fields = ["user__username", "user__email", "slack_member_id"]
    list_select_related = ["organization", "user"]
    fields = ["organization", "user", "time_zone", "slack_member_id"]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "user":
            # Members of the organisations the caller manages, no one else's accounts.
            managed = tenancy.organization_ids(request.user, tenancy.MANAGE_ROLES)
            members = Membership.objects.all()
            if managed is not None:
                members = members.filter(organization_id__in=managed)
            kwargs["queryset"] = (
                get_user_model()
                .objects.filter(pk__in=members.values("user_id"))
                .order_by("username")
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)
