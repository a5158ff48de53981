"""Paging: where notifications go (channels), when (escalation policies), and the
ledger of what was sent (notifications).

Definition apart from state, as everywhere: a manager edits `NotificationChannel`,
`EscalationPolicy` and its `EscalationStep`s; the engine alone writes an alert's
`Escalation` (the policy snapshot it runs on, and when to look again), the
`Notification` rows and a channel's `ChannelHealth`.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from controlplane.catalog import outbound
from controlplane.paging import channels
from controlplane.paging.channels import ChannelConfigError, ChannelKind
from controlplane.paging.escalation import PolicyError, PolicySnapshot, StepSnapshot

# The event values of the ledger, the payloads' `Event` literal.
EVENT_CHOICES = [
    ("trigger", "Trigger"),
    ("reminder", "Reminder"),
    ("acknowledge", "Acknowledge"),
    ("resolve", "Resolve"),
    ("test", "Test"),
]


class NotificationChannel(models.Model):
    """A destination: an email list, a Slack webhook, a PagerDuty service, a webhook."""

    organization = models.ForeignKey(
        "catalog.Organization", on_delete=models.CASCADE, related_name="channels"
    )
    name = models.SlugField(
        max_length=64, help_text="Unique in the organisation; escalation steps name it."
    )
    kind = models.CharField(max_length=16, choices=ChannelKind.choices)
    # channels.to_json() of the typed configuration, secrets included: they are written
    # through the form and the API, and shown masked (channels.masked) everywhere.
    config = models.JSONField(default=dict, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["organization", "name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="one_channel_per_name")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    def settings(self) -> channels.ChannelConfig:
        return channels.from_json(self.kind, self.config)

    def masked_config(self) -> dict[str, object]:
        try:
            return channels.masked(self.settings())
        except ChannelConfigError:
            return {}

    def clean(self) -> None:
        try:
            config = self.settings()
        except ChannelConfigError as error:
            raise ValidationError({"config": error.messages("config")}) from None
        url = getattr(config, "url", "")
        if url:
            # A literal private address is refused now; a name is judged when connecting.
            try:
                outbound.check_literal(urlsplit(url).hostname or "", outbound.WEBHOOKS)
            except outbound.Refused as refused:
                raise ValidationError({"config": f"config.url: {refused.message}"}) from None

    @property
    def failing(self) -> bool:
        health = getattr(self, "health", None)
        return health is not None and health.failing


class ChannelHealth(models.Model):
    """How a channel's deliveries have gone lately; written by the delivery worker only."""

    # Failures in a row after which a channel is shown as failing.
    FAILING_AFTER = 3

    channel = models.OneToOneField(
        NotificationChannel, on_delete=models.CASCADE, primary_key=True, related_name="health"
    )
    consecutive_failures = models.PositiveIntegerField(default=0)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)

    def __str__(self) -> str:
        return f"{self.channel}: {self.consecutive_failures} failures in a row"

    @property
    def failing(self) -> bool:
        return self.consecutive_failures >= self.FAILING_AFTER


class EscalationPolicy(models.Model):
    """Ordered steps, each notifying channels after a delay; see paging/escalation.py."""

    organization = models.ForeignKey(
        "catalog.Organization", on_delete=models.CASCADE, related_name="escalation_policies"
    )
    slug = models.SlugField(max_length=64)
    name = models.CharField(max_length=200)
    is_default = models.BooleanField(
        default=False,
        help_text="Used by the organisation's rules that name no policy. One per organisation.",
    )
    repeat = models.PositiveSmallIntegerField(
        default=0, help_text="Run the steps again this many times after the last one."
    )
    remind_every = models.DurationField(
        null=True,
        blank=True,
        help_text="While firing and unacknowledged, remind every channel notified so far.",
    )
    notify_on_resolve = models.BooleanField(
        default=False,
        help_text="Tell every channel notified of an alert when it resolves (PagerDuty always is).",
    )
    # Raised by every save through the admin or the API; an alert records the version
    # of the snapshot it runs on.
    version = models.PositiveIntegerField(default=1, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["organization", "slug"]
        verbose_name_plural = "escalation policies"
        constraints = [
            models.UniqueConstraint(fields=["organization", "slug"], name="one_policy_per_slug"),
            models.UniqueConstraint(
                fields=["organization"],
                condition=Q(is_default=True),
                name="one_default_policy_per_organization",
                violation_error_message=(
                    "Another policy is already this organisation's default: untick it there "
                    'first (the API\'s "default": true moves the default in one step).'
                ),
            ),
        ]

    def __str__(self) -> str:
        return self.name or self.slug

    def snapshot(self) -> PolicySnapshot:
        """The policy as an alert opened now runs on it, steps and channel kinds frozen."""
        steps = list(self.steps.prefetch_related("channels").order_by("position"))
        pagerduty = frozenset(
            channel.pk
            for step in steps
            for channel in step.channels.all()
            if channel.kind == ChannelKind.PAGERDUTY
        )
        return PolicySnapshot(
            version=self.version,
            steps=tuple(
                StepSnapshot(
                    delay=step.delay, channels=tuple(sorted(c.pk for c in step.channels.all()))
                )
                for step in steps
            ),
            repeat=self.repeat,
            remind_every=self.remind_every,
            notify_on_resolve=self.notify_on_resolve,
            pagerduty_channels=pagerduty,
        )

    def check_snapshot(self) -> None:
        """Refuse a policy an alert could not run on, each message naming its field."""
        try:
            self.snapshot().validate()
        except PolicyError as error:
            raise ValidationError(error.messages()) from None


class EscalationStep(models.Model):
    policy = models.ForeignKey(EscalationPolicy, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField(default=0)
    delay = models.DurationField(
        default=timedelta(0),
        help_text="Wait after the previous step (the first step: after the alert opened).",
    )
    channels = models.ManyToManyField(NotificationChannel, related_name="steps")

    class Meta:
        ordering = ["policy", "position"]
        constraints = [
            models.UniqueConstraint(fields=["policy", "position"], name="one_step_per_position")
        ]

    def __str__(self) -> str:
        return f"step {self.position + 1} after {self.delay}"

    def clean(self) -> None:
        if self.delay is not None and self.delay < timedelta(0):
            raise ValidationError({"delay": "A step cannot wait a negative time."})


class Escalation(models.Model):
    """The policy snapshot one alert runs on, and when the engine looks at it again."""

    alert = models.OneToOneField(
        "alerting.Alert", on_delete=models.CASCADE, primary_key=True, related_name="escalation"
    )
    policy = models.ForeignKey(
        EscalationPolicy,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="escalations",
    )
    policy_version = models.PositiveIntegerField()
    snapshot = models.JSONField()
    next_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    reapplied_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["next_at"], condition=Q(next_at__isnull=False), name="escalation_due"
            )
        ]

    def __str__(self) -> str:
        return f"alert {self.alert_id} on policy version {self.policy_version}"

    def policy_snapshot(self) -> PolicySnapshot:
        return PolicySnapshot.from_json(self.snapshot)


class Notification(models.Model):
    """One message to one channel about one alert: the delivery ledger.

    Written in the transaction that decided to send it, before any request is made;
    claimed by a delivery worker with a lease, and marked sent in the transaction
    that records the answer.
    """

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed (will retry)"
        DEAD = "dead", "Dead (gave up)"

    organization = models.ForeignKey(
        "catalog.Organization", on_delete=models.CASCADE, related_name="notifications"
    )
    alert = models.ForeignKey(
        "alerting.Alert",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="notifications",
        help_text="None for a channel's test notification.",
    )
    # The ledger outlives a deleted channel: its name and kind are kept on the row.
    channel = models.ForeignKey(
        NotificationChannel,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="notifications",
    )
    channel_name = models.CharField(max_length=64)
    channel_kind = models.CharField(max_length=16, choices=ChannelKind.choices)
    # The key of paging/escalation.py: one row per (alert, step, loop, reminder,
    # channel, event).
    step = models.SmallIntegerField(default=-1)
    loop = models.PositiveSmallIntegerField(default=0)
    reminder = models.PositiveSmallIntegerField(default=0)
    event = models.CharField(max_length=16, choices=EVENT_CHOICES)

    state = models.CharField(max_length=8, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    lease_until = models.DateTimeField(null=True, blank=True)
    lease_token = models.CharField(max_length=32, blank=True)
    last_status = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    trace_id = models.CharField(max_length=32, blank=True)
    is_test = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["alert", "step", "loop", "reminder", "channel", "event"],
                name="one_notification_per_key",
            )
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(state__in=["pending", "failed", "sending"]),
                name="notification_due",
            ),
            models.Index(fields=["organization", "state"], name="notification_state"),
        ]

    def __str__(self) -> str:
        return f"{self.event} to {self.channel_name} ({self.state})"
