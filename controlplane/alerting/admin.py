"""Rules, alerts and silences in the admin, behind the organisation walls.

Alerts change state only through `lifecycle`: the admin shows them read-only, with
their timeline and their notifications, and offers acknowledge, resolve and re-apply
the current escalation policy (paging/incident.py) as actions, open to responders and
managers.
"""

from __future__ import annotations

from collections import Counter

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from controlplane.alerting import evaluation, fingerprints, lifecycle, outbox
from controlplane.alerting.forms import AlertRuleForm, SilenceForm
from controlplane.alerting.models import Alert, AlertEvent, AlertRule, RuleEvaluation, Silence
from controlplane.alerting.templates import humanize
from controlplane.catalog import tenancy
from controlplane.catalog.actors import Actor
from controlplane.catalog.admin import OrganizationScopedAdmin, ReadOnlyInline, ReadOnlyRows
from controlplane.paging import incident
from controlplane.paging.models import Notification

# The label that sets a test alert apart from the rule's real instances.
TEST_LABELS = {"test": "true"}


def test_fingerprint(rule: AlertRule) -> str:
    return fingerprints.fingerprint(evaluation.rule_identity(rule), TEST_LABELS)


@admin.register(AlertRule)
class AlertRuleAdmin(OrganizationScopedAdmin):
    form = AlertRuleForm
    list_display = [
        "key",
        "name",
        "organization",
        "service",
        "severity",
        "state",
        "last_value",
        "enabled",
        "verification",
    ]
    list_filter = [
        ("service", admin.RelatedOnlyFieldListFilter),
        "severity",
        ("evaluation__state", admin.ChoicesFieldListFilter),
        "enabled",
        "builtin",
    ]
    search_fields = ["key", "name", "expr"]
    list_select_related = ["organization", "service", "evaluation"]
    actions = ["evaluate_now", "test_fire"]
    readonly_fields = [
        "builtin",
        "verification",
        "verification_note",
        "state",
        "last_value",
        "last_error",
        "last_evaluated_at",
        "next_slot",
    ]

    def get_readonly_fields(self, request, obj=None) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        # An alert's identity includes its organisation: a rule moved to another would
        # leave its open alerts where nothing evaluates them, firing for ever.
        if obj is not None and "organization" not in fields:
            fields.append("organization")
        return fields

    fieldsets = [
        (
            None,
            {
                "fields": [
                    "organization",
                    "key",
                    "name",
                    "service",
                    "severity",
                    "runbook",
                    "escalation_policy",
                    "enabled",
                    "builtin",
                ]
            },
        ),
        (
            "Condition",
            {
                "fields": [
                    "source",
                    "expr",
                    "op",
                    "threshold",
                    "for_duration",
                    "keep_firing_for",
                    "interval",
                    "verification",
                    "verification_note",
                ]
            },
        ),
        ("Labels and annotations", {"fields": ["labels", "annotations"]}),
        (
            "Evaluation",
            {
                "fields": [
                    "state",
                    "last_value",
                    "last_error",
                    "last_evaluated_at",
                    "next_slot",
                ]
            },
        ),
    ]

    # The evaluation state lives in its own row, written by the evaluator only: shown
    # here, never part of the form, so saving the rule cannot write it back.
    def _evaluation(self, rule: AlertRule) -> RuleEvaluation | None:
        try:
            return rule.evaluation
        except RuleEvaluation.DoesNotExist:
            return None

    @admin.display(description="state", ordering="evaluation__state")
    def state(self, rule: AlertRule) -> str:
        row = self._evaluation(rule)
        return row.get_state_display() if row else "not evaluated yet"

    @admin.display(description="last value", ordering="evaluation__last_value")
    def last_value(self, rule: AlertRule):
        row = self._evaluation(rule)
        return humanize(row.last_value) if row and row.last_value is not None else "-"

    @admin.display(description="last error")
    def last_error(self, rule: AlertRule) -> str:
        row = self._evaluation(rule)
        return row.last_error if row else ""

    @admin.display(description="last evaluated at")
    def last_evaluated_at(self, rule: AlertRule):
        row = self._evaluation(rule)
        return row.last_evaluated_at if row else None

    @admin.display(description="next slot")
    def next_slot(self, rule: AlertRule):
        row = self._evaluation(rule)
        return row.due_at if row else None

    def _managed(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return tenancy.scope(queryset, tenancy.organization_ids(request.user, tenancy.MANAGE_ROLES))

    @admin.action(description="Evaluate the selected rules now", permissions=["change"])
    def evaluate_now(self, request: HttpRequest, queryset: QuerySet) -> None:
        ids = list(self._managed(request, queryset).values_list("pk", flat=True))
        # In the request: bounded per query and in all (see evaluation.INTERACTIVE_BUDGET).
        outcomes = evaluation.evaluate_claimed(ids, interactive=True)
        results = Counter(outcome.result for outcome in outcomes)
        summary = ", ".join(f"{count} {result}" for result, count in sorted(results.items()))
        opened = sum(outcome.opened for outcome in outcomes)
        resolved = sum(outcome.resolved for outcome in outcomes)
        skipped = len(ids) - len(outcomes)
        message = (
            f"Evaluated {len(outcomes)} rule(s){': ' + summary if summary else ''}; "
            f"{opened} alert(s) opened, {resolved} resolved."
        )
        if skipped:
            message += f" {skipped} skipped (disabled, or being evaluated by a worker)."
        problems = results["source_error"] + results["bad_query"] + results["error"]
        self.message_user(request, message, messages.WARNING if problems else messages.SUCCESS)

    @admin.action(description="Test fire: open a test alert for each", permissions=["change"])
    def test_fire(self, request: HttpRequest, queryset: QuerySet) -> None:
        actor = Actor.user(request.user)
        opened = already = 0
        for rule in self._managed(request, queryset).select_related("service", "evaluation"):
            labels = {**rule.labels, **TEST_LABELS}
            row = self._evaluation(rule)
            value = rule.threshold if rule.threshold is not None else (row and row.last_value)
            _, created = lifecycle.open_alert(
                rule,
                test_fingerprint(rule),
                labels,
                value,
                evaluation.render_annotations(rule, labels, value if value is not None else 0.0),
                actor=actor,
                is_test=True,
            )
            opened += created
            already += not created
        message = f"{opened} test alert(s) opened."
        if already:
            message += f" {already} rule(s) already had an open test alert."
        self.message_user(request, message)


class AlertEventInline(ReadOnlyInline):
    model = AlertEvent
    fields = ["at", "kind", "actor", "trace_id", "note", "dispatch", "dispatch_note"]
    readonly_fields = fields
    verbose_name_plural = "timeline"


class NotificationInline(ReadOnlyInline):
    """The alert's notifications, as the ledger has them (paging writes them)."""

    model = Notification
    fields = [
        "created_at",
        "channel_name",
        "channel_kind",
        "event",
        "step",
        "loop",
        "reminder",
        "state",
        "attempts",
        "last_status",
        "last_error",
        "sent_at",
    ]
    readonly_fields = fields
    ordering = ["-created_at", "-pk"]
    verbose_name_plural = "notifications"


@admin.register(Alert)
class AlertAdmin(ReadOnlyRows, OrganizationScopedAdmin):
    list_display = [
        "rule_key",
        "organization",
        "service",
        "severity",
        "state",
        "value",
        "started_at",
        "silenced",
        "is_test",
    ]
    list_filter = [
        "state",
        "severity",
        ("service", admin.RelatedOnlyFieldListFilter),
        "is_test",
    ]
    search_fields = ["rule_key", "labels"]
    list_select_related = ["organization", "service"]
    date_hierarchy = "started_at"
    inlines = [AlertEventInline, NotificationInline]
    actions = ["acknowledge", "resolve", "reapply_current_policy"]
    fields = [
        "organization",
        "rule",
        "rule_key",
        "service",
        "state",
        "severity",
        "value",
        "labels",
        "annotations",
        "started_at",
        "acknowledged_at",
        "acknowledged_by",
        "resolved_at",
        "trace_id",
        "span_id",
        "actor",
        "is_test",
        "silenced_by",
        "fingerprint",
        "audit",
    ]
    readonly_fields = fields

    @admin.display(boolean=True)
    def silenced(self, alert: Alert) -> bool:
        return alert.silenced_by_id is not None

    def has_respond_permission(self, request: HttpRequest) -> bool:
        allowed = tenancy.organization_ids(request.user, tenancy.RESPOND_ROLES)
        return request.user.is_staff and (allowed is None or bool(allowed))

    def _respondable(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return tenancy.scope(
            queryset, tenancy.organization_ids(request.user, tenancy.RESPOND_ROLES)
        )

    @admin.action(description="Acknowledge the selected alerts", permissions=["respond"])
    def acknowledge(self, request: HttpRequest, queryset: QuerySet) -> None:
        selected = queryset.count()
        done = sum(
            lifecycle.acknowledge(alert, Actor.user(request.user))
            for alert in self._respondable(request, queryset)
        )
        self._report(request, "acknowledged", done, selected, "not firing")

    @admin.action(description="Resolve the selected alerts", permissions=["respond"])
    def resolve(self, request: HttpRequest, queryset: QuerySet) -> None:
        selected = queryset.count()
        actor = Actor.user(request.user)
        done = sum(
            lifecycle.resolve(alert, actor=actor, note="resolved by hand")
            for alert in self._respondable(request, queryset)
        )
        self._report(request, "resolved", done, selected, "already resolved")

    @admin.action(description="Re-apply the current escalation policy", permissions=["respond"])
    def reapply_current_policy(self, request: HttpRequest, queryset: QuerySet) -> None:
        selected = queryset.count()
        actor = Actor.user(request.user)
        done, reasons = 0, set()
        for alert in self._respondable(request, queryset):
            try:
                incident.reapply_current(alert, actor)
            except incident.CannotReapply as refused:
                reasons.add(str(refused).rstrip("."))
            else:
                done += 1
        why_not = "; ".join(sorted(reasons)) or "nothing to re-apply"
        self._report(request, "switched to the current policy", done, selected, why_not)

    def _report(self, request, verb: str, done: int, selected: int, why_not: str) -> None:
        message = f"{done} alert(s) {verb}."
        if done < selected:
            message += f" {selected - done} left as they were ({why_not}, or not yours to change)."
        self.message_user(request, message, messages.SUCCESS if done else messages.WARNING)


@admin.register(AlertEvent)
class AlertEventAdmin(ReadOnlyRows, OrganizationScopedAdmin):
    """The outbox, seen from the admin: what has been handed on, what failed and why."""

    organization_field = "alert__organization"
    list_display = [
        "at",
        "alert",
        "kind",
        "actor",
        "dispatch",
        "dispatch_attempts",
        "dispatched_at",
    ]
    list_filter = ["dispatch", "kind"]
    search_fields = ["alert__rule_key", "note", "dispatch_note"]
    list_select_related = ["alert"]
    date_hierarchy = "at"
    actions = ["retry_dispatch"]
    fields = [
        "alert",
        "at",
        "kind",
        "actor",
        "trace_id",
        "note",
        "details",
        "dispatch",
        "dispatch_attempts",
        "dispatch_claimed_until",
        "dispatched_at",
        "dispatch_note",
    ]
    readonly_fields = fields

    def has_retry_permission(self, request: HttpRequest) -> bool:
        allowed = tenancy.organization_ids(request.user, tenancy.MANAGE_ROLES)
        return request.user.is_staff and (allowed is None or bool(allowed))

    @admin.action(description="Hand failed events to their consumers again", permissions=["retry"])
    def retry_dispatch(self, request: HttpRequest, queryset: QuerySet) -> None:
        managed = tenancy.scope(
            queryset,
            tenancy.organization_ids(request.user, tenancy.MANAGE_ROLES),
            field="alert__organization",
        )
        count = outbox.retry(managed)
        self.message_user(
            request,
            f"{count} failed event(s) queued again."
            + ("" if count else " Only failed events of your organisations can be retried."),
            messages.SUCCESS if count else messages.WARNING,
        )


class SilenceStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("scheduled", "Scheduled"), ("expired", "Expired")]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "active":
            return queryset.filter(starts_at__lte=now, ends_at__gt=now)
        if self.value() == "scheduled":
            return queryset.filter(starts_at__gt=now)
        if self.value() == "expired":
            return queryset.filter(ends_at__lte=now)
        return queryset


@admin.register(Silence)
class SilenceAdmin(OrganizationScopedAdmin):
    form = SilenceForm
    list_display = [
        "__str__",
        "organization",
        "comment",
        "starts_at",
        "ends_at",
        "status",
        "created_by",
    ]
    list_filter = [SilenceStatusFilter]
    search_fields = ["comment"]
    list_select_related = ["organization", "created_by"]
    readonly_fields = ["created_by", "created_at"]

    @admin.display(description="status")
    def status(self, silence: Silence) -> str:
        now = timezone.now()
        if silence.starts_at > now:
            return "scheduled"
        return "active" if silence.ends_at > now else "expired"

    def save_model(self, request, obj: Silence, form, change: bool) -> None:
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)
