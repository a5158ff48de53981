"""Job monitors and ping keys in the admin, behind the organisation walls.

A monitor's definition is edited here; what pings and the overdue check learnt
(`JobMonitorState`) is shown read-only, never part of the form, and its runs are a
read-only list of the latest few. Pausing and resuming go through the pings' recorder
(controlplane/jobs/runs.py), as every change of state does.

A ping key is a bearer secret, as a Healthchecks project's ping key is: whoever holds
it may report runs of the organisation's monitors under it, and add monitors with
`?create=1`. Only managers see the keys, as they alone see API tokens.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest

from controlplane.catalog import tenancy
from controlplane.catalog.actors import Actor
from controlplane.catalog.admin import OrganizationScopedAdmin, ReadOnlyInline
from controlplane.jobs.forms import JobMonitorForm, schedule_words
from controlplane.jobs.models import JobMonitor, JobMonitorState, JobRun, PingKey, new_ping_key
from controlplane.jobs.views import duration_text
from controlplane.trace_links import trace_link

# Runs shown on a monitor's change page: its page and the API list them all.
RUNS_SHOWN = 50
# The tail of a run's log shown in the list of runs.
EXCERPT_SHOWN = 300
STATE_FIELDS = [
    "status",
    "last_start",
    "last_success",
    "last_failure",
    "last_outcome",
    "next_expected",
]
REPORTING = "Reporting and alerting"
KEY_WARNING = (
    "A ping key is a bearer secret, as a Healthchecks project's ping key is: whoever "
    "holds it may report runs of this organisation's monitors that use it, and add "
    "monitors with ?create=1. Keep it as you would a password. A key that leaked: issue a "
    "new one (the action in the list); the old URLs then answer 404."
)


class LatestRuns(BaseInlineFormSet):
    """The monitor's latest runs only: a monitor that runs every minute has thousands."""

    def get_queryset(self) -> QuerySet:
        if not hasattr(self, "_latest"):
            self._latest = super().get_queryset().order_by("-created_at", "-pk")[:RUNS_SHOWN]
        return self._latest


class JobRunInline(ReadOnlyInline):
    model = JobRun
    formset = LatestRuns
    verbose_name_plural = f"runs (the latest {RUNS_SHOWN})"
    fields = [
        "started_at",
        "finished_at",
        "outcome",
        "run_duration",
        "exit_code",
        "too_early",
        "run_id",
        "trace",
        "log_tail",
    ]
    readonly_fields = fields

    @admin.display(description="duration")
    def run_duration(self, run: JobRun) -> str:
        return duration_text(run.duration)

    @admin.display(description="trace")
    def trace(self, run: JobRun) -> str:
        return trace_link(run.trace_id)

    @admin.display(description="log (its end)")
    def log_tail(self, run: JobRun) -> str:
        if not run.excerpt:
            return "-"
        tail = run.excerpt[-EXCERPT_SHOWN:]
        return f"\u2026{tail}" if len(run.excerpt) > EXCERPT_SHOWN else tail


@admin.register(JobMonitor)
class JobMonitorAdmin(OrganizationScopedAdmin):
    form = JobMonitorForm
    inlines = [JobRunInline]
    list_display = [
        "slug",
        "name",
        "organization",
        "kind",
        "service",
        "schedule",
        "status",
        "last_success",
        "next_expected",
    ]
    list_filter = [
        "kind",
        ("state__status", admin.ChoicesFieldListFilter),
        "schedule_kind",
        ("service", admin.RelatedOnlyFieldListFilter),
    ]
    search_fields = ["slug", "name", "kind"]
    list_select_related = ["organization", "service", "state"]
    actions = ["pause", "resume"]
    readonly_fields = [*STATE_FIELDS, "ping_url"]
    fieldsets = [
        (None, {"fields": ["organization", "slug", "name", "kind", "service"]}),
        (
            "Schedule",
            {
                "fields": ["schedule_kind", "cron", "time_zone", "period", "grace"],
                "description": "A cron expression read in its time zone (as Healthchecks "
                "reads it, with cronsim), or a fixed period; only the fields of the chosen "
                "kind are kept.",
            },
        ),
        ("Run duration", {"fields": ["min_duration", "max_duration"]}),
        (
            REPORTING,
            {
                "fields": ["ping_key", "runbook", "escalation_policy"],
                "description": "Empty ping key: the organisation's key named default "
                "(made when needed).",
            },
        ),
        (
            "State (from pings and the overdue check)",
            {"fields": STATE_FIELDS},
        ),
    ]

    def get_fieldsets(self, request: HttpRequest, obj=None):
        if obj is None:
            # Nothing has been reported before the first save.
            return [entry for entry in self.fieldsets if not entry[0] or "State" not in entry[0]]
        if not self.has_change_permission(request, obj):
            return self.fieldsets
        # The key in the ping URL is a bearer secret: shown to managers only, as on the
        # monitor's page.
        return [
            (name, {**options, "fields": [*options["fields"], "ping_url"]})
            if name == REPORTING
            else (name, options)
            for name, options in self.fieldsets
        ]

    def get_readonly_fields(self, request: HttpRequest, obj=None) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            # Its runs, state and ping key are the organisation's: a monitor stays in it.
            # Its slug is in its ping URL and its metrics' `job` label, as in the API.
            fields += [name for name in ("organization", "slug") if name not in fields]
        return fields

    def save_model(self, request: HttpRequest, obj: JobMonitor, form, change: bool) -> None:
        from controlplane.jobs import editing

        if obj.ping_key_id is None:
            obj.ping_key, _ = PingKey.objects.get_or_create(
                organization=obj.organization, name="default"
            )
        editing.save(obj, Actor.user(request.user))

    # --- the state, shown ------------------------------------------------------------------

    def _state(self, monitor: JobMonitor) -> JobMonitorState | None:
        try:
            return monitor.state
        except JobMonitorState.DoesNotExist:
            return None

    @admin.display(description="schedule")
    def schedule(self, monitor: JobMonitor) -> str:
        return schedule_words(monitor)

    @admin.display(description="status", ordering="state__status")
    def status(self, monitor: JobMonitor) -> str:
        state = self._state(monitor)
        return state.get_status_display() if state else JobMonitorState.Status.NEW.label

    @admin.display(description="last start", ordering="state__last_start")
    def last_start(self, monitor: JobMonitor):
        state = self._state(monitor)
        return state.last_start if state else None

    @admin.display(description="last success", ordering="state__last_success")
    def last_success(self, monitor: JobMonitor):
        state = self._state(monitor)
        return state.last_success if state else None

    @admin.display(description="last failure", ordering="state__last_failure")
    def last_failure(self, monitor: JobMonitor):
        state = self._state(monitor)
        return state.last_failure if state else None

    @admin.display(description="last outcome")
    def last_outcome(self, monitor: JobMonitor) -> str:
        state = self._state(monitor)
        return (state.last_outcome if state else "") or "-"

    @admin.display(description="next expected run", ordering="state__next_expected")
    def next_expected(self, monitor: JobMonitor):
        state = self._state(monitor)
        return state.next_expected if state else None

    @admin.display(description="ping URL")
    def ping_url(self, monitor: JobMonitor) -> str:
        if not monitor.ping_key_id:
            return "- (no ping key)"
        return f"{settings.SITE_URL}/ping/{monitor.ping_key.key}/{monitor.slug}"

    # --- actions ----------------------------------------------------------------------------

    def _managed(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return tenancy.scope(queryset, tenancy.organization_ids(request.user, tenancy.MANAGE_ROLES))

    def _switch(self, request: HttpRequest, queryset: QuerySet, pausing: bool) -> None:
        from controlplane.jobs import runs

        selected = queryset.count()
        actor = Actor.user(request.user)
        change = runs.pause if pausing else runs.resume
        changed = sum(1 for monitor in self._managed(request, queryset) if change(monitor, actor))
        verb = "paused" if pausing else "resumed"
        message = f"{changed} job monitor(s) {verb}."
        if changed < selected:
            already = "already paused" if pausing else "not paused"
            message += f" {selected - changed} left as they were ({already}, or not yours)."
        self.message_user(request, message, messages.SUCCESS if changed else messages.WARNING)

    @admin.action(description="Pause the selected monitors", permissions=["change"])
    def pause(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._switch(request, queryset, pausing=True)

    @admin.action(description="Resume the selected monitors", permissions=["change"])
    def resume(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._switch(request, queryset, pausing=False)


@admin.register(PingKey)
class PingKeyAdmin(OrganizationScopedAdmin):
    """Managers add, name and replace ping keys. Like API tokens, they alone see them."""

    read_roles = tenancy.MANAGE_ROLES
    list_display = ["name", "organization", "monitor_count", "created_at"]
    search_fields = ["name"]
    readonly_fields = ["key", "created_at"]
    actions = ["replace_key"]
    fieldsets = [(None, {"fields": ["organization", "name", "key", "created_at"],
                         "description": KEY_WARNING})]  # fmt: skip

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).annotate(monitors_using=Count("monitors"))

    @admin.display(description="monitors", ordering="monitors_using")
    def monitor_count(self, key: PingKey) -> int:
        return getattr(key, "monitors_using", 0)

    def get_readonly_fields(self, request: HttpRequest, obj=None) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and "organization" not in fields:
            fields.append("organization")
        return fields

    @admin.action(description="Replace the key of the selected (old URLs stop working)",
                  permissions=["change"])  # fmt: skip
    def replace_key(self, request: HttpRequest, queryset: QuerySet) -> None:
        managed = tenancy.organization_ids(request.user, tenancy.MANAGE_ROLES)
        replaced = 0
        for key in tenancy.scope(queryset, managed):
            PingKey.objects.filter(pk=key.pk).update(key=new_ping_key())
            replaced += 1
        self.message_user(
            request,
            f"{replaced} key(s) replaced: their monitors' ping URLs changed; update the jobs "
            "that report to them.",
            messages.SUCCESS if replaced else messages.WARNING,
        )
