"""Job monitors: the recurring jobs (ETL loads, payroll exports, equipment syncs,
backups) that report their runs, and the runs themselves.

Definition apart from state: a manager edits `JobMonitor` (its schedule, grace,
durations, runbook, policy); pings and the overdue check alone write its
`JobMonitorState` (status, last start, success and failure), with compare-and-set
updates, and its `JobRun` rows. A `PingKey` is the secret in the ping URLs
(`/ping/<key>/<slug>`), shared by a group of monitors as a Healthchecks project's is.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from controlplane.audit.audited import Audited, AuditSpec
from controlplane.catalog.validators import contains_nul, contains_surrogate
from controlplane.oncall.models import check_zone

SLUG = RegexValidator(
    r"^[a-z0-9][a-z0-9_-]{0,63}$",
    "Use lowercase letters, digits, dashes and underscores, e.g. payroll-export.",
)
KIND = RegexValidator(
    r"^[a-z0-9][a-z0-9_-]{0,31}$",
    "A kind such as etl, payroll, equipment, backup, restore or maintenance.",
)
KINDS = ("etl", "payroll", "equipment", "backup", "restore", "maintenance")
# The kinds whose failures the built-in rule etl.job.failure pages for.
BUSINESS_KINDS = ("etl", "payroll", "equipment")
# The kind of the control plane's own audit retention job (controlplane/audit/job.py),
# whose failures the built-in rule audit.job.failure pages for.
AUDIT_KIND = "audit"
LONGEST_GRACE = timedelta(days=7)
LONGEST_DURATION = timedelta(days=7)
LONGEST_PERIOD = timedelta(days=365)
SHORTEST_PERIOD = timedelta(minutes=1)
# The most of a run's output (log, body of a ping) kept on the run: the tail, as the
# end of a log says why it stopped. Announced in the Ping-Body-Limit header.
EXCERPT_LIMIT = 10_000


# Keys start with it so that the log filter (controlplane/key_masking.py) finds them in
# every request line that names a ping URL.
PING_KEY_PREFIX = "jpk_"


def new_ping_key() -> str:
    return PING_KEY_PREFIX + secrets.token_urlsafe(16)


class PingKey(Audited):
    """The secret in `/ping/<key>/<slug>`: whoever holds it may report runs of the
    organisation's monitors under it (and, with ?create=1, add monitors)."""

    audit = AuditSpec(secret=frozenset({"key"}))

    organization = models.ForeignKey(
        "catalog.Organization", on_delete=models.CASCADE, related_name="ping_keys"
    )
    name = models.CharField(max_length=100, default="default")
    key = models.CharField(max_length=64, unique=True, default=new_ping_key, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["organization", "name"]

    def __str__(self) -> str:
        return f"{self.organization.slug}: {self.name}"


class JobMonitor(Audited):
    audit = AuditSpec()

    class Schedule(models.TextChoices):
        CRON = "cron", "Cron expression in a time zone"
        PERIOD = "period", "Every period"

    organization = models.ForeignKey(
        "catalog.Organization", on_delete=models.CASCADE, related_name="job_monitors"
    )
    service = models.ForeignKey(
        "catalog.Service",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="job_monitors",
    )
    slug = models.CharField(max_length=64, validators=[SLUG])
    name = models.CharField(max_length=200)
    kind = models.CharField(
        max_length=32,
        validators=[KIND],
        default="etl",
        help_text="etl, payroll, equipment, backup, restore, maintenance, or your own word.",
    )
    schedule_kind = models.CharField(
        "schedule", max_length=8, choices=Schedule.choices, default=Schedule.CRON
    )
    cron = models.CharField(
        max_length=200, blank=True, help_text="e.g. 0 2 * * * (02:00 every day)."
    )
    time_zone = models.CharField(
        max_length=64, default="UTC", validators=[check_zone], help_text="IANA name."
    )
    period = models.DurationField(
        null=True, blank=True, help_text="Every period schedules: the time between runs."
    )
    grace = models.DurationField(
        default=timedelta(minutes=15),
        help_text="How late a run may start before the monitor is late.",
    )
    min_duration = models.DurationField(
        "minimum duration", null=True, blank=True, help_text="A run shorter than this is too fast."
    )
    max_duration = models.DurationField(
        "maximum duration", null=True, blank=True, help_text="A run longer than this timed out."
    )
    ping_key = models.ForeignKey(
        PingKey, on_delete=models.PROTECT, related_name="monitors", null=True, blank=True
    )
    runbook = models.ForeignKey(
        "runbooks.Runbook",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="job_monitors",
    )
    escalation_policy = models.ForeignKey(
        "paging.EscalationPolicy",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="job_monitors",
        help_text="Empty: the organisation's default policy.",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["organization", "slug"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "slug"], name="job_slug_per_org"),
            models.CheckConstraint(condition=Q(grace__gt=timedelta(0)), name="job_grace_positive"),
        ]

    def __str__(self) -> str:
        return self.slug

    def get_absolute_url(self) -> str:
        return reverse("jobs:detail", args=[self.slug])

    def clean(self) -> None:
        from controlplane.jobs import schedule

        errors: dict[str, list[str]] = {}

        def refuse(field: str, message: str) -> None:
            errors.setdefault(field, []).append(message)

        for field in ("slug", "name", "kind", "cron"):
            value = getattr(self, field)
            if contains_nul(value):
                refuse(field, "It contains a NUL character.")
            elif contains_surrogate(value):
                refuse(field, "It contains a surrogate character (U+D800 to U+DFFF).")
        if self.schedule_kind == self.Schedule.CRON:
            if not self.cron.strip():
                refuse("cron", "A cron schedule needs an expression such as 0 2 * * *.")
            else:
                try:
                    schedule.check_cron(self.cron.strip())
                except ValueError as error:
                    refuse("cron", str(error))
            try:
                check_zone(self.time_zone)
            except ValidationError as error:
                refuse("time_zone", error.messages[0])
        elif self.period is None:
            refuse("period", "An every-period schedule needs a period, e.g. 1 day.")
        elif not (SHORTEST_PERIOD <= self.period <= LONGEST_PERIOD):
            refuse("period", "A period lasts from 1 minute to 365 days.")
        if self.grace is not None and self.grace <= timedelta(0):
            refuse("grace", "The grace time must be above zero.")
        elif self.grace is not None and self.grace > LONGEST_GRACE:
            refuse("grace", "The grace time can be at most 7 days.")
        for field in ("min_duration", "max_duration"):
            value = getattr(self, field)
            if value is not None and value <= timedelta(0):
                refuse(field, "A duration must be above zero.")
            elif value is not None and value > LONGEST_DURATION:
                refuse(field, "A duration can be at most 7 days.")
        if (
            self.min_duration is not None
            and self.max_duration is not None
            and self.min_duration >= self.max_duration
        ):
            refuse("min_duration", "The minimum duration must be below the maximum duration.")
        for field, related in (
            ("service", self.service if self.service_id else None),
            ("runbook", self.runbook if self.runbook_id else None),
            ("escalation_policy", self.escalation_policy if self.escalation_policy_id else None),
            ("ping_key", self.ping_key if self.ping_key_id else None),
        ):
            owner = getattr(related, "organization_id", None) if related is not None else None
            if related is not None and owner is not None and owner != self.organization_id:
                refuse(field, "It belongs to another organisation.")
        if errors:
            raise ValidationError(errors)


class JobMonitorState(models.Model):
    """What pings and the overdue check last learnt: written only by them, with
    compare-and-set updates (`controlplane/jobs/runs.py`), never by an edit."""

    class Status(models.TextChoices):
        NEW = "new", "New (no run yet)"
        UP = "up", "Up"
        RUNNING = "running", "Running"
        LATE = "late", "Late"
        FAILED = "failed", "Failed"
        PAUSED = "paused", "Paused"

    monitor = models.OneToOneField(
        JobMonitor, on_delete=models.CASCADE, primary_key=True, related_name="state"
    )
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.NEW)
    # Bumped by every change: the compare-and-set token of the row.
    version = models.PositiveBigIntegerField(default=0)
    last_start = models.DateTimeField(null=True, blank=True)
    last_success = models.DateTimeField(null=True, blank=True)
    last_failure = models.DateTimeField(null=True, blank=True)
    # When the next run is expected to start (the schedule's next time after the last
    # one it served), and whether the overdue check already reported it missed.
    next_expected = models.DateTimeField(null=True, blank=True)
    last_outcome = models.CharField(max_length=16, blank=True)
    # How the monitor's current trouble began (the first bad outcome since its last
    # success, and that run's trace), kept until a success: etl.job.failure names it, so
    # failed retries and a later missed slot keep one alert (controlplane/jobs/trouble.py).
    trouble_outcome = models.CharField(max_length=16, blank=True)
    trouble_trace_id = models.CharField(max_length=32, blank=True)
    changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["next_expected"], name="job_state_expected")]

    def __str__(self) -> str:
        return f"{self.monitor_id}: {self.status}"


class JobRun(models.Model):
    class Outcome(models.TextChoices):
        SUCCESS = "success", "Success"
        FAILURE = "failure", "Failure"
        TIMEOUT = "timeout", "Timed out (past the maximum duration)"
        TOO_FAST = "too_fast", "Too fast (under the minimum duration)"
        MISSED = "missed", "Missed (never started)"

    monitor = models.ForeignKey(JobMonitor, on_delete=models.CASCADE, related_name="runs")
    run_id = models.UUIDField(null=True, blank=True, help_text="The client's ?rid=, if any.")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Empty while running.
    outcome = models.CharField(max_length=16, choices=Outcome.choices, blank=True)
    duration = models.DurationField(null=True, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    excerpt = models.TextField(blank=True, help_text=f"The last {EXCERPT_LIMIT} characters.")
    excerpt_truncated = models.BooleanField(default=False)
    # Started before the schedule allowed (runs coming too often).
    too_early = models.BooleanField(default=False)
    trace_id = models.CharField(max_length=32, blank=True)
    span_id = models.CharField(max_length=16, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["monitor", "run_id"],
                condition=Q(run_id__isnull=False),
                name="one_run_per_rid",
            )
        ]
        indexes = [
            models.Index(fields=["monitor", "-created_at"], name="job_run_recent"),
            # What every ping pairs with and beat's check looks for: the few open runs,
            # not the whole history.
            models.Index(
                fields=["monitor", "started_at"],
                condition=Q(finished_at__isnull=True),
                name="job_run_unfinished",
            ),
            models.Index(fields=["started_at"], condition=Q(outcome=""), name="job_run_open"),
        ]

    def __str__(self) -> str:
        return f"{self.monitor_id} {self.outcome or 'running'}"
