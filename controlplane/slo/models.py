"""SLOs: what a manager promises (`SLO`), what the evaluator last measured
(`SLOEvaluation`), and the history of those measurements (`SLOSnapshot`).

Definition apart from state: an admin or API save of an SLO never writes its
evaluation, and the evaluator never writes the SLO row.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from controlplane.alerting.models import LABEL_NAME, LONGEST_EXPR, LONGEST_LABEL_VALUE, MOST_LABELS
from controlplane.alerting.states import OPERATORS
from controlplane.audit.audited import Audited, AuditSpec
from controlplane.catalog.validators import contains_nul, contains_surrogate
from controlplane.oncall.models import check_zone
from controlplane.slo import definition as spec
from controlplane.slo.definition import RESERVED_LABELS

SLUG = RegexValidator(
    r"^[a-z0-9][a-z0-9-]{0,63}$",
    "Use lowercase letters, digits and dashes, e.g. api-availability.",
)
# A Prometheus metric name (the histogram's family, without _bucket or _count).
METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
SHORTEST_SLICE = timedelta(minutes=1)
LONGEST_SLICE = timedelta(hours=1)
# The most events a manager can ask for before alerts speak: beyond it nothing ever would.
MOST_MIN_EVENTS = 10**12


class SLO(Audited):
    audit = AuditSpec()

    class Kind(models.TextChoices):
        RATIO = "ratio", "Ratio of counters (good or bad / total)"
        LATENCY = "latency", "Latency (histogram bucket at a threshold)"
        THRESHOLD = "threshold", "Threshold per time slice"
        # Measured from this database, no source (controlplane/slo/objectives.py).
        RPO = "rpo", "RPO: age of the last good backup, per time slice"
        RTO = "rto", "RTO: restore time of drills and incidents"

    class Window(models.TextChoices):
        D7 = "7d", "Rolling 7 days"
        D28 = "28d", "Rolling 28 days"
        D30 = "30d", "Rolling 30 days"
        WEEK = "week", "Calendar week"
        MONTH = "month", "Calendar month"
        QUARTER = "quarter", "Calendar quarter"

    class Budgeting(models.TextChoices):
        OCCURRENCES = "occurrences", "Occurrences (good events / all events)"
        TIMESLICES = "timeslices", "Time slices (good slices / all slices)"

    organization = models.ForeignKey(
        "catalog.Organization", on_delete=models.CASCADE, related_name="slos"
    )
    service = models.ForeignKey(
        "catalog.Service", null=True, blank=True, on_delete=models.SET_NULL, related_name="slos"
    )
    slug = models.CharField(max_length=64, validators=[SLUG])
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    source = models.ForeignKey(
        "catalog.MetricSource",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="slos",
        help_text="The Prometheus the SLI is read from.",
    )
    kind = models.CharField("SLI kind", max_length=16, choices=Kind.choices, default=Kind.RATIO)

    # ratio: good or bad, and total, each a counter selector
    good = models.TextField(
        blank=True,
        help_text='Counter selector of good events, e.g. http_requests_total{code!~"5.."}.',
    )
    bad = models.TextField(
        blank=True,
        help_text='Or a counter selector of bad events, e.g. http_requests_total{code=~"5.."}.',
    )
    total = models.TextField(
        blank=True, help_text="Counter selector of all events, e.g. http_requests_total."
    )
    # latency: a histogram family, a label filter and a threshold in seconds
    metric = models.CharField(
        max_length=200,
        blank=True,
        help_text="Histogram name without _bucket, e.g. http_server_request_duration_seconds.",
    )
    selector = models.TextField(
        blank=True, help_text='Label filter without braces, e.g. http_route="/api/v1/slos/".'
    )
    # threshold: an expression compared per time slice (latency uses `threshold` too)
    expr = models.TextField("expression", blank=True)
    op = models.CharField(
        "comparison", max_length=2, blank=True, choices=[(op, op) for op in OPERATORS]
    )
    threshold = models.FloatField(
        null=True, blank=True, help_text="Latency: seconds. Threshold SLI: the compared value."
    )
    # rpo and rto (objectives.py): the backup (or restore-drill) monitor, the services
    # whose critical alerts are incidents (rto), and the RPO or RTO itself.
    job = models.ForeignKey(
        "jobs.JobMonitor",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="slos",
        verbose_name="job monitor",
        help_text="RPO: the backup monitor. RTO: the restore-drill monitor (kind restore).",
    )
    incident_services = models.JSONField(
        default=list,
        blank=True,
        help_text='RTO: slugs of the services whose critical alerts are incidents, e.g. ["api"].',
    )
    recovery_target = models.DurationField(
        "RPO or RTO",
        null=True,
        blank=True,
        help_text="RPO: the oldest a backup may be (empty: 24 h). RTO: the longest a restore "
        "may take (empty: 4 h).",
    )
    # The histogram bucket's `le` as the source spells it ("0.25", "1.0"), found when the
    # SLO was checked against its source.
    bucket_le = models.CharField(max_length=32, blank=True, editable=False)

    objective = models.FloatField(help_text="Percent, strictly between 0 and 100, e.g. 99.9.")
    window = models.CharField(max_length=8, choices=Window.choices, default=Window.D30)
    time_zone = models.CharField(
        max_length=64,
        default="UTC",
        validators=[check_zone],
        help_text="Calendar windows reset at local midnight in this IANA zone.",
    )
    budgeting = models.CharField(
        max_length=16, choices=Budgeting.choices, default=Budgeting.OCCURRENCES
    )
    slice_length = models.DurationField(
        default=timedelta(minutes=5), help_text="Time slices: the length of one slice."
    )
    slice_target = models.FloatField(
        null=True,
        blank=True,
        help_text="Time slices of a ratio or latency SLI: the share (0-1] a slice must reach "
        "to be good. Threshold SLIs ignore it.",
    )
    min_events = models.PositiveBigIntegerField(
        "minimum events",
        default=0,
        help_text="Below this many events in the window, burn-rate alerts stay quiet.",
    )
    page = models.BooleanField("page alerts", default=True)
    ticket = models.BooleanField("ticket alerts", default=True)
    escalation_policy = models.ForeignKey(
        "paging.EscalationPolicy",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="slos",
        help_text="Empty: the organisation's default policy.",
    )
    runbook = models.ForeignKey(
        "runbooks.Runbook",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="slos",
        help_text="Empty: the slo-burn-rate runbook.",
    )
    labels = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)

    verification_note = models.TextField(blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "SLO"
        ordering = ["organization", "slug"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "slug"], name="slo_slug_per_org"),
            models.CheckConstraint(
                condition=Q(objective__gt=0) & Q(objective__lt=100), name="slo_objective_range"
            ),
        ]

    def __str__(self) -> str:
        return self.slug

    def get_absolute_url(self) -> str:
        return reverse("slos:detail", args=[self.slug])

    def definition(self) -> spec.Definition:
        from controlplane.slo.objectives import DEFAULT_TARGETS

        indicator: spec.Indicator
        if self.kind == self.Kind.RPO:
            indicator = spec.Rpo(
                job=self.job.slug if self.job_id else None,
                target=self.recovery_target or DEFAULT_TARGETS[self.kind],
            )
        elif self.kind == self.Kind.RTO:
            indicator = spec.Rto(
                job=self.job.slug if self.job_id else None,
                services=tuple(self.incident_services or ()),
                target=self.recovery_target or DEFAULT_TARGETS[self.kind],
            )
        elif self.kind == self.Kind.LATENCY:
            indicator = spec.Latency(
                metric=self.metric,
                threshold=float(self.threshold or 0),
                le=self.bucket_le or format_le(float(self.threshold or 0)),
                selector=self.selector.strip(),
            )
        elif self.kind == self.Kind.THRESHOLD:
            indicator = spec.Threshold(
                expr=self.expr, op=self.op, threshold=float(self.threshold or 0)
            )  # type: ignore[arg-type]
        else:
            indicator = spec.Ratio(total=self.total, good=self.good or None, bad=self.bad or None)
        return spec.Definition(
            slug=self.slug,
            name=self.name,
            indicator=indicator,
            objective=self.objective,
            window=spec.Window.named(self.window, self.time_zone),
            budgeting=self.budgeting,  # type: ignore[arg-type]
            slice_length=self.slice_length,
            slice_target=self.slice_target,
            min_events=self.min_events,
            page=self.page,
            ticket=self.ticket,
            labels=dict(self.labels or {}),
            service=self.service.slug if self.service_id else None,
            organization=self.organization.slug if self.organization_id else None,
        )

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}

        def refuse(field: str, message: str) -> None:
            errors.setdefault(field, []).append(message)

        for field in ("slug", "name", "description", "good", "bad", "total", "metric"):
            value = getattr(self, field)
            if contains_nul(value):
                refuse(field, "It contains a NUL character.")
            elif contains_surrogate(value):
                refuse(field, "It contains a surrogate character (U+D800 to U+DFFF).")
        for field in ("selector", "expr", "labels"):
            if contains_nul(getattr(self, field)):
                refuse(field, "It contains a NUL character.")
            elif contains_surrogate(getattr(self, field)):
                refuse(field, "It contains a surrogate character (U+D800 to U+DFFF).")

        if self.objective is not None and not (
            math.isfinite(self.objective) and 0 < self.objective < 100
        ):
            refuse(
                "objective",
                "The objective is a percentage strictly between 0 and 100, e.g. 99.9 "
                f"(not {self.objective:g}).",
            )
        if self.kind == self.Kind.RATIO:
            self._clean_ratio(refuse)
        elif self.kind == self.Kind.LATENCY:
            self._clean_latency(refuse)
        elif self.kind == self.Kind.THRESHOLD:
            self._clean_threshold(refuse)
        elif self.kind in (self.Kind.RPO, self.Kind.RTO):
            self._clean_objective(refuse)
        for field in ("good", "bad", "total", "selector", "expr"):
            if len(getattr(self, field) or "") > LONGEST_EXPR:
                refuse(field, f"At most {LONGEST_EXPR} characters: it is sent at every evaluation.")
        if self.kind in (self.Kind.RATIO, self.Kind.LATENCY, self.Kind.THRESHOLD) and (
            self.source_id is None
        ):
            refuse("source", "An SLO of this kind reads its SLI from a Prometheus source.")

        if self.budgeting == self.Budgeting.TIMESLICES:
            if self.slice_length is None or not (
                SHORTEST_SLICE <= self.slice_length <= LONGEST_SLICE
            ):
                refuse("slice_length", "A time slice lasts from 1m to 1h.")
            elif timedelta(minutes=5) % self.slice_length and self.slice_length % timedelta(
                minutes=5
            ):
                refuse(
                    "slice_length",
                    "A time slice divides 5m or is a multiple of it (1m, 5m, 10m, 15m, 1h…), "
                    "so the burn-rate windows hold whole slices.",
                )
            if self.kind not in (self.Kind.THRESHOLD, self.Kind.RPO, self.Kind.RTO):
                if self.slice_target is None:
                    refuse("slice_target", "Time slices of this SLI need a slice target.")
                elif not (math.isfinite(self.slice_target) and 0 < self.slice_target <= 1):
                    refuse("slice_target", "The slice target is a share in (0, 1], e.g. 0.95.")
        elif self.kind == self.Kind.THRESHOLD:
            refuse("budgeting", "A threshold SLI is budgeted by time slices only.")

        if self.window in spec.CALENDAR:
            try:
                check_zone(self.time_zone)
            except ValidationError as error:
                refuse("time_zone", error.messages[0])
        if self.min_events is not None and self.min_events > MOST_MIN_EVENTS:
            refuse("min_events", f"At most {MOST_MIN_EVENTS}.")
        self._clean_labels(refuse)

        for field, related in (
            ("service", self.service if self.service_id else None),
            ("source", self.source if self.source_id else None),
            ("runbook", self.runbook if self.runbook_id else None),
            ("escalation_policy", self.escalation_policy if self.escalation_policy_id else None),
            ("job", self.job if self.job_id else None),
        ):
            owner = getattr(related, "organization_id", None) if related is not None else None
            if related is not None and owner is not None and owner != self.organization_id:
                refuse(field, "It belongs to another organisation.")
        if errors:
            raise ValidationError(errors)

    def _clean_ratio(self, refuse) -> None:
        if not self.total.strip():
            refuse("total", "A ratio SLI needs a total counter selector.")
        if bool(self.good.strip()) == bool(self.bad.strip()):
            refuse("good", "Give a good counter selector or a bad one, not both and not neither.")
        if self.budgeting == self.Budgeting.OCCURRENCES and self.slice_target is not None:
            refuse("slice_target", "Only time slices have a slice target.")

    def _clean_latency(self, refuse) -> None:
        if not METRIC_NAME.match(self.metric or ""):
            refuse(
                "metric",
                "A histogram name such as http_server_request_duration_seconds "
                "(without _bucket or _count).",
            )
        elif self.metric.endswith(("_bucket", "_count", "_sum")):
            refuse("metric", "Name the histogram without its _bucket, _count or _sum suffix.")
        if "{" in self.selector or "}" in self.selector:
            refuse("selector", 'Write the label filter without braces, e.g. job="api".')
        if self.threshold is None:
            refuse("threshold", "A latency SLI needs a threshold in seconds, e.g. 0.2.")
        elif not (math.isfinite(self.threshold) and self.threshold > 0):
            refuse("threshold", "The threshold is a number of seconds above 0.")

    def _clean_threshold(self, refuse) -> None:
        if not self.expr.strip():
            refuse("expr", "A threshold SLI needs a PromQL expression.")
        if not self.op:
            refuse("op", "A threshold SLI needs a comparison such as <.")
        if self.threshold is None:
            refuse("threshold", "A threshold SLI needs a value to compare with.")
        elif not math.isfinite(self.threshold):
            refuse("threshold", "The threshold must be a finite number.")

    def _clean_objective(self, refuse) -> None:
        """RPO and RTO (objectives.py): read from job runs and alerts, not a source."""
        from controlplane.catalog.models import Service
        from controlplane.jobs.models import JobMonitor
        from controlplane.slo.objectives import RESTORE_KIND

        name = self.kind.upper()
        if self.source_id is not None:
            refuse("source", f"An {name} is measured from job runs and alerts: it has no source.")
        if self.recovery_target is not None and not (
            timedelta(minutes=1) <= self.recovery_target <= timedelta(days=30)
        ):
            refuse("recovery_target", f"The {name} lasts from 1m to 30d, e.g. 24h.")
        if self.slice_target is not None:
            refuse("slice_target", f"An {name} has no slice target.")
        services = self.incident_services
        if not isinstance(services, list) or not all(isinstance(s, str) for s in services):
            refuse("incident_services", 'A list of service slugs, e.g. ["api"].')
            services = []
        if self.kind == self.Kind.RPO:
            if self.job_id is None:
                refuse("job", "An RPO needs the backup monitor whose successes it measures.")
            if services:
                refuse("incident_services", "Only an RTO counts incidents.")
            if self.budgeting != self.Budgeting.TIMESLICES:
                refuse("budgeting", "An RPO is budgeted by time slices only.")
            return
        if self.budgeting != self.Budgeting.OCCURRENCES:
            refuse("budgeting", "An RTO is budgeted by occurrences (restores) only.")
        if self.job_id is None and not services:
            refuse("job", "An RTO needs a restore-drill monitor, or services (or both).")
        elif self.job_id is not None:
            kind = JobMonitor.objects.filter(pk=self.job_id).values_list("kind", flat=True).first()
            if kind is not None and kind != RESTORE_KIND:
                refuse("job", f"An RTO's drill is a monitor of kind restore (not {kind}).")
        if services and self.organization_id is not None:
            known = set(
                Service.objects.filter(
                    organization_id=self.organization_id, slug__in=services
                ).values_list("slug", flat=True)
            )
            if unknown := [slug for slug in services if slug not in known]:
                refuse("incident_services", f"Unknown services: {', '.join(unknown)}.")

    def _clean_labels(self, refuse) -> None:
        labels = self.labels
        if not isinstance(labels, dict) or not all(
            isinstance(k, str) and LABEL_NAME.match(k) and isinstance(v, str)
            for k, v in labels.items()
        ):
            refuse(
                "labels",
                'Labels are an object of names to strings, e.g. {"team": "payments"}; '
                "names are letters, digits and underscores.",
            )
        elif any(k.startswith("__") for k in labels):
            refuse("labels", "Label names starting with __ are reserved, as in Prometheus.")
        elif reserved := sorted(set(labels) & RESERVED_LABELS):
            refuse("labels", f"These labels are set by the SLO itself: {', '.join(reserved)}.")
        elif len(labels) > MOST_LABELS:
            refuse("labels", f"At most {MOST_LABELS} labels.")
        elif any(len(v) > LONGEST_LABEL_VALUE for v in labels.values()):
            refuse("labels", f"A label value can be at most {LONGEST_LABEL_VALUE} characters.")


def format_le(threshold: float) -> str:
    """How client libraries spell a bucket bound: "0.25", "1.0" (Python) or "1" (Go).

    Used only until the source has told us its own spelling."""
    return repr(float(threshold))


class SLOEvaluation(models.Model):
    """What the evaluator last measured: written by the evaluator only, never by an edit."""

    class Status(models.TextChoices):
        PENDING = "pending", "Not evaluated yet"
        OK = "ok", "OK"
        WARNING = "warning", "Warning (ticket burn rate)"
        BREACHING = "breaching", "Breaching (page burn rate)"
        EXHAUSTED = "exhausted", "Budget exhausted"
        INSUFFICIENT_TRAFFIC = "insufficient_traffic", "Insufficient traffic"
        NO_DATA = "no_data", "No data"

    slo = models.OneToOneField(
        SLO, on_delete=models.CASCADE, primary_key=True, related_name="evaluation"
    )
    status = models.CharField(max_length=24, choices=Status.choices, default=Status.PENDING)
    sli = models.FloatField(null=True, blank=True)
    budget_remaining = models.FloatField(null=True, blank=True)
    burn_rates = models.JSONField(default=dict, blank=True)
    events = models.FloatField(null=True, blank=True, help_text="Events (or slices) in the window.")
    time_to_exhaustion = models.DurationField(null=True, blank=True)
    # RPO: the age of the last good backup; RTO: the longest restore in the window
    # (objectives.py). Null for the other kinds, or with nothing to show.
    current_value = models.FloatField(null=True, blank=True)
    current_unit = models.CharField(max_length=16, blank=True)
    window_start = models.DateTimeField(null=True, blank=True)
    window_end = models.DateTimeField(null=True, blank=True)
    fast_path = models.BooleanField(default=False, help_text="Read the recording rules.")
    last_error = models.TextField(blank=True)
    evaluated_at = models.DateTimeField(null=True, blank=True)
    trace_id = models.CharField(max_length=32, blank=True)
    due_at = models.DateTimeField(default=timezone.now)
    claimed_until = models.DateTimeField(null=True, blank=True)
    claim_token = models.CharField(max_length=32, blank=True, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["due_at"], name="slo_evaluation_due")]

    def __str__(self) -> str:
        return f"{self.slo_id}: {self.status}"


class SLOSnapshot(models.Model):
    """One evaluation kept as history (thinned as it ages: controlplane/slo/history.py)."""

    slo = models.ForeignKey(SLO, on_delete=models.CASCADE, related_name="snapshots")
    at = models.DateTimeField()
    status = models.CharField(max_length=24, choices=SLOEvaluation.Status.choices)
    sli = models.FloatField(null=True, blank=True)
    budget_remaining = models.FloatField(null=True, blank=True)
    burn_rates = models.JSONField(default=dict, blank=True)
    events = models.FloatField(null=True, blank=True)
    # As SLOEvaluation.current_value (RPO and RTO only), in its current_unit.
    current_value = models.FloatField(null=True, blank=True)
    trace_id = models.CharField(max_length=32, blank=True)

    class Meta:
        ordering = ["slo", "at"]
        indexes = [models.Index(fields=["slo", "at"], name="slo_snapshot_time")]

    def __str__(self) -> str:
        return f"{self.slo_id} at {self.at:%Y-%m-%d %H:%M}: {self.status}"
