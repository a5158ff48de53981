"""Alert rules, the alerts they open, the timeline of each alert, and silences."""

from __future__ import annotations

import math
import re
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from controlplane.alerting import internal_signals, templates
from controlplane.alerting.states import OPERATORS
from controlplane.audit.audited import Audited, AuditSpec
from controlplane.catalog.actors import BEAT
from controlplane.catalog.validators import contains_nul, contains_surrogate
from controlplane.trace_links import trace_url

KEY_VALIDATOR = RegexValidator(
    r"^[a-z0-9][a-z0-9._-]{0,99}$",
    "Use lowercase letters, digits, dots, dashes and underscores, e.g. api.5xx.",
)
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# Upper bounds that keep schedules meaningful (and date arithmetic finite).
LONGEST_FOR = timedelta(days=30)
LONGEST_INTERVAL = timedelta(days=1)
LONGEST_LABEL_VALUE = 1024
LONGEST_ANNOTATION = 8192
# A rule's labels and annotations are copied into every alert it opens and every
# notification about it: bounded in number and in total, not just one by one.
MOST_LABELS = 32
LABELS_TOTAL = 8192  # characters of names and values together
MOST_ANNOTATIONS = 16
ANNOTATIONS_TOTAL = 32768
# Sent to the source at every evaluation and checked with a GET at save: an expression
# past this is refused rather than saved unverified and sent every interval.
LONGEST_EXPR = 4096


class Severity(models.TextChoices):
    CRITICAL = "critical", "Critical"
    WARNING = "warning", "Warning"
    INFO = "info", "Info"


class AlertRule(Audited):
    # The evaluator marks a rule saved unverified as verified once its source ran it
    # (evaluation._verify): the rule's state, not an edit. An edit that changes the
    # verification (a new expression) still shows it in its diff.
    audit = AuditSpec(quiet=frozenset({"verification", "verification_note"}))

    class State(models.TextChoices):
        INACTIVE = "inactive", "Inactive"
        PENDING = "pending", "Pending"
        FIRING = "firing", "Firing"
        UNKNOWN = "unknown", "Unknown (source failing)"

    class Verification(models.TextChoices):
        VERIFIED = "verified", "Checked by its source"
        UNVERIFIED = "unverified", "Not checked: the source could not be reached"
        INTERNAL = "internal", "Internal signal"

    organization = models.ForeignKey(
        "catalog.Organization", on_delete=models.CASCADE, related_name="alert_rules"
    )
    service = models.ForeignKey(
        "catalog.Service", null=True, blank=True, on_delete=models.SET_NULL, related_name="rules"
    )
    key = models.CharField(max_length=100, validators=[KEY_VALIDATOR])
    name = models.CharField(max_length=200)
    severity = models.CharField(max_length=16, choices=Severity.choices, default=Severity.WARNING)
    source = models.ForeignKey(
        "catalog.MetricSource",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="rules",
        help_text="Leave empty to read an internal signal instead of PromQL.",
    )
    expr = models.TextField(
        "expression", help_text="PromQL for a source; the signal's name for an internal signal."
    )
    op = models.CharField(
        "comparison",
        max_length=2,
        blank=True,
        choices=[(op, op) for op in OPERATORS],
        help_text="Empty: every series the expression returns is breaching.",
    )
    threshold = models.FloatField(null=True, blank=True)
    for_duration = models.DurationField("for", default=timedelta(0))
    keep_firing_for = models.DurationField(default=timedelta(0))
    interval = models.DurationField("evaluation interval", default=timedelta(minutes=1))
    labels = models.JSONField(default=dict, blank=True)
    annotations = models.JSONField(
        default=dict, blank=True, help_text='{"summary": "…", "description": "…"} templates'
    )
    runbook = models.ForeignKey(
        "runbooks.Runbook", null=True, blank=True, on_delete=models.SET_NULL, related_name="rules"
    )
    escalation_policy = models.ForeignKey(
        "paging.EscalationPolicy",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="rules",
        help_text="Empty: the organisation's default policy.",
    )
    enabled = models.BooleanField(default=True)
    builtin = models.BooleanField(default=False, editable=False)

    # Set when the rule is saved (its PromQL checked against the source), and moved
    # from unverified to verified by the evaluator with a compare-and-set update.
    verification = models.CharField(
        max_length=16, choices=Verification.choices, default=Verification.UNVERIFIED
    )
    verification_note = models.TextField(blank=True, editable=False)

    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["organization", "key"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "key"], name="rule_key_per_org"),
            models.CheckConstraint(
                condition=Q(for_duration__gte=timedelta(0))
                & Q(keep_firing_for__gte=timedelta(0))
                & Q(interval__gte=timedelta(seconds=1)),
                name="rule_durations_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return self.key

    def get_absolute_url(self) -> str:
        return reverse("admin:alerting_alertrule_change", args=[self.pk])

    @property
    def is_internal(self) -> bool:
        return self.source_id is None

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        if self.for_duration is not None and self.for_duration < timedelta(0):
            errors.setdefault("for_duration", []).append("'for' cannot be negative.")
        if self.keep_firing_for is not None and self.keep_firing_for < timedelta(0):
            errors.setdefault("keep_firing_for", []).append("keep_firing_for cannot be negative.")
        if self.interval is not None and self.interval < timedelta(seconds=1):
            errors.setdefault("interval", []).append("The interval must be at least 1s.")
        if self.interval is not None and self.interval > LONGEST_INTERVAL:
            errors.setdefault("interval", []).append("The interval can be at most 1d.")
        for field in ("for_duration", "keep_firing_for"):
            value = getattr(self, field)
            if value is not None and value > LONGEST_FOR:
                errors.setdefault(field, []).append("This can be at most 30d.")
        if self.threshold is not None and not math.isfinite(self.threshold):
            errors.setdefault("threshold", []).append("The threshold must be a finite number.")
        for field in ("key", "name", "expr", "labels", "annotations"):
            if contains_nul(getattr(self, field)):
                errors.setdefault(field, []).append("It contains a NUL character.")
            elif contains_surrogate(getattr(self, field)):
                errors.setdefault(field, []).append(
                    "It contains a surrogate character (U+D800 to U+DFFF), which no text "
                    "encoding can store."
                )
        if self.op and self.threshold is None:
            errors.setdefault("threshold", []).append(
                f"The comparison {self.op} needs a threshold."
            )
        if self.threshold is not None and not self.op:
            errors.setdefault("op", []).append("A threshold needs a comparison such as >.")
        if not isinstance(self.labels, dict) or not all(
            isinstance(k, str) and LABEL_NAME.match(k) and isinstance(v, str)
            for k, v in (self.labels or {}).items()
        ):
            errors.setdefault("labels", []).append(
                'Labels are an object of names to strings, e.g. {"team": "payments"}; '
                "names are letters, digits and underscores."
            )
        elif any(k.startswith("__") for k in self.labels):
            errors.setdefault("labels", []).append(
                "Label names starting with __ are reserved, as in Prometheus."
            )
        elif any(len(v) > LONGEST_LABEL_VALUE for v in self.labels.values()):
            errors.setdefault("labels", []).append(
                f"A label value can be at most {LONGEST_LABEL_VALUE} characters: "
                "it is copied into every alert."
            )
        elif len(self.labels) > MOST_LABELS:
            errors.setdefault("labels", []).append(
                f"A rule can have at most {MOST_LABELS} labels (this one has "
                f"{len(self.labels)}): they are copied into every alert."
            )
        elif sum(len(k) + len(v) for k, v in self.labels.items()) > LABELS_TOTAL:
            errors.setdefault("labels", []).append(
                f"A rule's labels can hold at most {LABELS_TOTAL} characters in all, "
                "names and values together: they are copied into every alert."
            )
        if self.expr and len(self.expr) > LONGEST_EXPR:
            errors.setdefault("expr", []).append(
                f"An expression can be at most {LONGEST_EXPR} characters (this one has "
                f"{len(self.expr)}): it is sent to the source at every evaluation."
            )
        errors.update(annotation_errors(self.annotations))
        for field, related in (
            ("service", self.service),
            ("source", self.source),
            ("runbook", self.runbook),
            ("escalation_policy", self.escalation_policy),
        ):
            owner = getattr(related, "organization_id", None) if related is not None else None
            if related is not None and owner is not None and owner != self.organization_id:
                errors.setdefault(field, []).append("It belongs to another organisation.")
        if self.source_id is None and self.expr:
            if self.expr.strip() not in internal_signals.registry:
                known = ", ".join(sorted(internal_signals.registry)) or "none"
                errors.setdefault("expr", []).append(
                    f"Without a source the expression names an internal signal; "
                    f"{self.expr.strip()!r} is not one (known: {known})."
                )
        if errors:
            raise ValidationError(errors)


def annotation_errors(annotations) -> dict[str, list[str]]:
    if not isinstance(annotations, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
    ):
        return {"annotations": ["Annotations are an object of names to template strings."]}
    if len(annotations) > MOST_ANNOTATIONS:
        return {
            "annotations": [
                f"A rule can have at most {MOST_ANNOTATIONS} annotations (this one has "
                f"{len(annotations)})."
            ]
        }
    if sum(len(k) + len(v) for k, v in annotations.items()) > ANNOTATIONS_TOTAL:
        return {
            "annotations": [
                f"A rule's annotations can hold at most {ANNOTATIONS_TOTAL} characters in all: "
                "they are rendered into every alert and notification."
            ]
        }
    problems = []
    for name, template in annotations.items():
        if len(template) > LONGEST_ANNOTATION:
            problems.append(f"{name}: at most {LONGEST_ANNOTATION} characters.")
            continue
        try:
            templates.check(template)
        except templates.TemplateError as error:
            problems.append(f"{name}: {error}")
    return {"annotations": problems} if problems else {}


class RuleEvaluation(models.Model):
    """A rule's evaluation state: written by the evaluator only, never by an edit.

    The rule row is what a manager edits; this row is what every tick writes. An
    admin or API save of the rule can therefore never write back instances it read
    before an evaluation changed them (which would leave their alerts open for ever).
    """

    rule = models.OneToOneField(
        AlertRule, on_delete=models.CASCADE, primary_key=True, related_name="evaluation"
    )
    state = models.CharField(
        max_length=16, choices=AlertRule.State.choices, default=AlertRule.State.INACTIVE
    )
    instances = models.JSONField(default=list, blank=True)
    last_value = models.FloatField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_evaluated_at = models.DateTimeField(null=True, blank=True)
    # The slot the last evaluation served, and the next one: slots are fixed
    # (previous slot + interval), so evaluations keep time however long one takes.
    slot_at = models.DateTimeField(null=True, blank=True)
    due_at = models.DateTimeField(default=timezone.now)
    # Queued by beat or held by a worker until then (a lost task or a killed worker
    # gives the rule back when it passes); the token says whose turn it is.
    claimed_until = models.DateTimeField(null=True, blank=True)
    claim_token = models.CharField(max_length=32, blank=True, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["due_at"], name="rule_evaluation_due")]

    def __str__(self) -> str:
        return f"{self.rule_id}: {self.state}"


class Alert(models.Model):
    class State(models.TextChoices):
        FIRING = "firing", "Firing"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"
        RESOLVED = "resolved", "Resolved"

    organization = models.ForeignKey(
        "catalog.Organization", on_delete=models.CASCADE, related_name="alerts"
    )
    # An alert knows its rule, or its SLO (slo/alerts.py), or its Alertmanager source
    # (paging/alertmanager.py); job monitors will add their own reference beside them.
    rule = models.ForeignKey(
        AlertRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts"
    )
    alertmanager = models.ForeignKey(
        "paging.AlertmanagerIntegration",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="alerts",
        help_text="The Alertmanager integration that reported it; empty for our rules' alerts.",
    )
    slo = models.ForeignKey(
        "slo.SLO",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="alerts",
        help_text="The SLO whose burn rate opened it.",
    )
    rule_key = models.CharField(max_length=100)
    service = models.ForeignKey(
        "catalog.Service", null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts"
    )
    fingerprint = models.CharField(max_length=64)
    state = models.CharField(max_length=16, choices=State.choices, default=State.FIRING)
    severity = models.CharField(max_length=16, choices=Severity.choices)
    value = models.FloatField(null=True, blank=True)
    labels = models.JSONField(default=dict)
    annotations = models.JSONField(default=dict)
    started_at = models.DateTimeField(default=timezone.now)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    trace_id = models.CharField(max_length=32, blank=True)
    span_id = models.CharField(max_length=16, blank=True)
    audit = models.JSONField(
        default=dict, help_text="organisation, service, rule, actor, request id"
    )
    actor = models.CharField(max_length=100, default=BEAT.spec)
    is_test = models.BooleanField(default=False)
    silenced_by = models.ForeignKey(
        "alerting.Silence", null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts"
    )
    # A link of the alert's own, where its rule names no runbook: an alert from
    # Alertmanager links the runbook its runbook_url annotation or runbook label names
    # (a path of ours, or an absolute address).
    runbook_url = models.CharField(max_length=800, blank=True)

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "fingerprint"],
                condition=~Q(state="resolved"),
                name="one_open_alert_per_fingerprint",
            )
        ]
        indexes = [models.Index(fields=["organization", "state", "-started_at"], name="alert_list")]

    def __str__(self) -> str:
        return f"{self.rule_key} {self.state}"

    def get_absolute_url(self) -> str:
        return reverse("alerts:detail", args=[self.pk])

    @property
    def is_open(self) -> bool:
        return self.state != self.State.RESOLVED

    def trace_url(self) -> str:
        return trace_url(self.trace_id)


class AlertEvent(models.Model):
    class Kind(models.TextChoices):
        OPENED = "opened", "Opened (firing)"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"
        RESOLVED = "resolved", "Resolved"
        SILENCED = "silenced", "Silenced"
        UNSILENCED = "unsilenced", "Silence ended while firing"
        SOURCE_UNKNOWN = "source_unknown", "Source failing: kept firing"
        REAPPLIED = "reapplied", "Escalation switched to the current policy"

    class Dispatch(models.TextChoices):
        PENDING = "pending", "Waiting for its consumers"
        DONE = "done", "Taken by its consumers"
        FAILED = "failed", "A consumer failed: see the note"

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(default=timezone.now)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    actor = models.CharField(max_length=100)
    trace_id = models.CharField(max_length=32, blank=True)
    note = models.TextField(blank=True)
    # What the alert looked like at this moment (an opening keeps its first value
    # and annotations here, since the alert's own are re-rendered every evaluation).
    details = models.JSONField(default=dict, blank=True)

    # The outbox (see docs/alerting.md): written in the transaction of the change,
    # pending until the consumers have recorded what they did with it.
    dispatch = models.CharField(
        max_length=8, choices=Dispatch.choices, default=Dispatch.PENDING, editable=False
    )
    dispatch_attempts = models.PositiveIntegerField(default=0, editable=False)
    dispatch_claimed_until = models.DateTimeField(null=True, blank=True, editable=False)
    dispatch_token = models.CharField(max_length=32, blank=True, editable=False)
    dispatched_at = models.DateTimeField(null=True, blank=True, editable=False)
    dispatch_note = models.TextField(blank=True, editable=False)

    class Meta:
        ordering = ["at", "pk"]
        indexes = [
            models.Index(
                fields=["alert", "id"],
                condition=Q(dispatch="pending"),
                name="alert_event_undispatched",
            ),
            models.Index(
                fields=["dispatch_token"],
                condition=Q(dispatch="pending"),
                name="alert_event_claim",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} by {self.actor}"


class Silence(Audited):
    """A maintenance window: matching alerts are recorded but notify no one."""

    audit = AuditSpec(people=frozenset({"created_by_id"}))

    organization = models.ForeignKey(
        "catalog.Organization", on_delete=models.CASCADE, related_name="silences"
    )
    matchers = models.JSONField(
        default=list,
        help_text='[{"name": "rule", "op": "=", "value": "api.5xx"}] — names: rule, service '
        "or any label; ops: = != =~ !~",
    )
    starts_at = models.DateTimeField(default=timezone.now)
    ends_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    comment = models.TextField()
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-starts_at"]

    def __str__(self) -> str:
        return f"silence {self.pk} until {self.ends_at:%Y-%m-%d %H:%M}"

    def clean(self) -> None:
        from controlplane.alerting.silences import MatcherError, parse_matchers

        errors = {}
        try:
            parse_matchers(self.matchers)
        except MatcherError as error:
            errors["matchers"] = str(error)
        if contains_nul(self.matchers) or contains_nul(self.comment):
            errors["matchers"] = "The silence contains a NUL character."
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            errors["ends_at"] = "A silence must end after it starts."
        if errors:
            raise ValidationError(errors)
