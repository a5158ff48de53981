"""SLOs in the admin, behind the organisation walls.

An SLO is saved and deleted through its recorder (`editing`), as the API and OpenSLO
import do. What the evaluator measured lives in its own row (`SLOEvaluation`): shown
here read-only, never part of the form, so saving an SLO cannot write it back.
Snapshots (the history) have no admin: they are the evaluator's, thinned as they age,
and read on the SLO's page and through the API.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from controlplane.catalog import tenancy
from controlplane.catalog.actors import Actor
from controlplane.catalog.admin import OrganizationScopedAdmin
from controlplane.slo import editing
from controlplane.slo.definition import BURN_WINDOWS
from controlplane.slo.forms import SLOForm
from controlplane.slo.models import SLO, SLOEvaluation
from controlplane.trace_links import trace_link

EVALUATION_FIELDS = [
    "status",
    "measured_sli",
    "budget_remaining",
    "burn_rates",
    "events",
    "time_to_exhaustion",
    "measured_window",
    "evaluated_at",
    "last_error",
    "trace",
    "next_evaluation",
]


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.3%}"


@admin.register(SLO)
class SLOAdmin(OrganizationScopedAdmin):
    form = SLOForm
    list_display = [
        "slug",
        "name",
        "organization",
        "service",
        "kind",
        "objective",
        "window",
        "status",
        "budget_remaining",
        "evaluated_at",
        "enabled",
    ]
    list_filter = [
        "kind",
        "window",
        "budgeting",
        ("service", admin.RelatedOnlyFieldListFilter),
        ("evaluation__status", admin.ChoicesFieldListFilter),
        "enabled",
    ]
    search_fields = ["slug", "name", "description"]
    list_select_related = ["organization", "service", "evaluation"]
    actions = ["enable", "disable", "evaluate_now"]
    readonly_fields = ["verification_note", "bucket_le", *EVALUATION_FIELDS]
    fieldsets = [
        (
            None,
            {"fields": ["organization", "slug", "name", "description", "service", "enabled"]},
        ),
        (
            "SLI",
            {
                "fields": ["source", "kind", "verification_note"],
                "description": "Every query is checked against the source when saved; "
                "only the fields of the chosen kind are kept.",
            },
        ),
        (
            "Ratio SLI: good (or bad) events over all events",
            {"fields": ["good", "bad", "total"]},
        ),
        (
            "Latency SLI: requests faster than the threshold, from a histogram",
            {
                "fields": ["metric", "selector", "bucket_le"],
                "description": "The threshold (below) is in seconds and must be one of "
                "the histogram's buckets.",
            },
        ),
        (
            "Threshold SLI: an expression compared per time slice",
            {"fields": ["expr", "op", "threshold"]},
        ),
        (
            "RPO or RTO: measured from job runs and incidents, with no source",
            {
                "fields": ["job", "incident_services", "recovery_target"],
                "description": "RPO: the backup monitor, budgeted by time slices. RTO: a "
                "restore-drill monitor (kind restore) and/or the services whose critical "
                "alerts are incidents, budgeted by occurrences. See docs/slos.md.",
            },
        ),
        (
            "Objective and window",
            {
                "fields": [
                    "objective",
                    "window",
                    "time_zone",
                    "budgeting",
                    "slice_length",
                    "slice_target",
                ]
            },
        ),
        (
            "Alerting",
            {
                "fields": [
                    "min_events",
                    "page",
                    "ticket",
                    "escalation_policy",
                    "runbook",
                    "labels",
                ]
            },
        ),
        ("Evaluation", {"fields": EVALUATION_FIELDS}),
    ]

    def get_fieldsets(self, request: HttpRequest, obj=None):
        if obj is not None:
            return self.fieldsets
        # Nothing is measured or checked before the first save.
        hidden = {"verification_note", "bucket_le"}
        return [
            (name, {**options, "fields": [f for f in options["fields"] if f not in hidden]})
            for name, options in self.fieldsets
            if name != "Evaluation"
        ]

    def get_readonly_fields(self, request: HttpRequest, obj=None) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        # An SLO's alerts are identified within its organisation: moved to another,
        # its open alerts would be left where nothing evaluates them.
        if obj is not None and "organization" not in fields:
            fields.append("organization")
        return fields

    # --- saving and deleting through the recorder --------------------------------------

    def save_model(self, request: HttpRequest, obj: SLO, form, change: bool) -> None:
        editing.save(obj, Actor.user(request.user))
        if obj.verification_note:
            self.message_user(
                request,
                f"{obj.slug} was saved without being checked against its source: "
                f"{obj.verification_note}",
                messages.WARNING,
            )

    def delete_model(self, request: HttpRequest, obj: SLO) -> None:
        editing.delete(obj, Actor.user(request.user))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        actor = Actor.user(request.user)
        for slo in self._managed(request, queryset):
            editing.delete(slo, actor)

    # --- the evaluator's row, shown -----------------------------------------------------

    def _evaluation(self, slo: SLO) -> SLOEvaluation | None:
        try:
            return slo.evaluation
        except SLOEvaluation.DoesNotExist:
            return None

    @admin.display(description="status", ordering="evaluation__status")
    def status(self, slo: SLO) -> str:
        row = self._evaluation(slo)
        return row.get_status_display() if row else SLOEvaluation.Status.PENDING.label

    @admin.display(description="SLI")
    def measured_sli(self, slo: SLO) -> str:
        row = self._evaluation(slo)
        return _percent(row.sli if row else None)

    @admin.display(description="budget remaining", ordering="evaluation__budget_remaining")
    def budget_remaining(self, slo: SLO) -> str:
        row = self._evaluation(slo)
        return _percent(row.budget_remaining if row else None)

    @admin.display(description="burn rates")
    def burn_rates(self, slo: SLO) -> str:
        row = self._evaluation(slo)
        rates = row.burn_rates if row and isinstance(row.burn_rates, dict) else {}
        if not rates:
            return "-"
        shown = []
        for name in BURN_WINDOWS:
            value = rates.get(name)
            shown.append(f"{name}: {'-' if value is None else f'{value:.3g}x'}")
        return ", ".join(shown)

    @admin.display(description="events in the window")
    def events(self, slo: SLO) -> str:
        row = self._evaluation(slo)
        return "-" if row is None or row.events is None else f"{row.events:,.0f}"

    @admin.display(description="budget spent in")
    def time_to_exhaustion(self, slo: SLO) -> str:
        row = self._evaluation(slo)
        if row is None or row.time_to_exhaustion is None:
            return "- (not burning)"
        return str(row.time_to_exhaustion)

    @admin.display(description="window measured")
    def measured_window(self, slo: SLO) -> str:
        row = self._evaluation(slo)
        if row is None or row.window_start is None or row.window_end is None:
            return "-"
        start, end = timezone.localtime(row.window_start), timezone.localtime(row.window_end)
        path = " (recording rules)" if row.fast_path else ""
        return f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M}{path}"

    @admin.display(description="evaluated at", ordering="evaluation__evaluated_at")
    def evaluated_at(self, slo: SLO):
        row = self._evaluation(slo)
        return row.evaluated_at if row else None

    @admin.display(description="last error")
    def last_error(self, slo: SLO) -> str:
        row = self._evaluation(slo)
        return (row.last_error if row else "") or "-"

    @admin.display(description="trace")
    def trace(self, slo: SLO) -> str:
        row = self._evaluation(slo)
        return trace_link(row.trace_id if row is not None else "")

    @admin.display(description="next evaluation")
    def next_evaluation(self, slo: SLO):
        row = self._evaluation(slo)
        return row.due_at if row else None

    # --- actions -----------------------------------------------------------------------

    def _managed(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return tenancy.scope(queryset, tenancy.organization_ids(request.user, tenancy.MANAGE_ROLES))

    def _switch(self, request: HttpRequest, queryset: QuerySet, enabled: bool) -> None:
        selected = queryset.count()
        actor = Actor.user(request.user)
        changed = 0
        for slo in self._managed(request, queryset):
            if slo.enabled != enabled:
                slo.enabled = enabled
                editing.save(slo, actor)
                changed += 1
        verb = "enabled" if enabled else "disabled"
        message = f"{changed} SLO(s) {verb}."
        if changed < selected:
            message += f" {selected - changed} left as they were (already {verb}, or not yours)."
        self.message_user(request, message, messages.SUCCESS if changed else messages.WARNING)

    @admin.action(description="Enable the selected SLOs", permissions=["change"])
    def enable(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._switch(request, queryset, True)

    @admin.action(description="Disable the selected SLOs", permissions=["change"])
    def disable(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._switch(request, queryset, False)

    @admin.action(description="Evaluate the selected SLOs now", permissions=["change"])
    def evaluate_now(self, request: HttpRequest, queryset: QuerySet) -> None:
        # Loaded when used: the evaluator's module declares its metrics, which a web
        # process that never evaluates would otherwise export, empty.
        from controlplane.slo import evaluation

        ids = list(
            self._managed(request, queryset).filter(enabled=True).values_list("pk", flat=True)
        )
        # An SLO saved around the recorder has no evaluation row yet: give it one.
        evaluation.ensure_evaluations(ids)
        due = SLOEvaluation.objects.filter(slo_id__in=ids).update(due_at=timezone.now())
        self.message_user(
            request,
            f"{due} SLO(s) will be evaluated at the next tick (within seconds); their "
            "status shows here once it has run. Disabled SLOs are not evaluated.",
            messages.SUCCESS if due else messages.WARNING,
        )
