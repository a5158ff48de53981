"""Paging: where notifications go (channels), when (escalation policies), and the
ledger of what was sent (notifications).

Definition apart from state, as everywhere: a manager edits `NotificationChannel`,
`EscalationPolicy` and its `EscalationStep`s; the engine alone writes an alert's
`Escalation` (the policy snapshot it runs on, and when to look again), the
`Notification` rows and a channel's `ChannelHealth`. Likewise a manager edits an
`AlertmanagerIntegration` (an Alertmanager sending its alerts here, paging/intake.py),
whose `IntegrationHealth` the intake alone writes.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from controlplane.audit.audited import Audited, AuditSpec
from controlplane.catalog import outbound
from controlplane.catalog.models import token_digest
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


# Where a channel's audit diff puts configuration keys no kind of channel has.
CONFIG_OTHER = "config.other"


class NotificationChannel(Audited):
    """A destination: an email list, a Slack webhook, a PagerDuty service, a webhook."""

    # `config` holds plain settings, secrets and addresses in one JSON field:
    # audit_values splits it into one entry per key ("config.url"), so the trail says
    # which key changed. A key that is a secret for any kind is one for every kind (a
    # URL may carry its receiver's credential, as Slack's always does), addresses are
    # personal, and a key no kind has is hidden too until someone names it here.
    audit = AuditSpec(
        secret=frozenset(
            {f"config.{name}" for names in channels.SECRET_FIELDS.values() for name in names}
            | {CONFIG_OTHER}
        ),
        personal=frozenset({"config.to"}),
    )

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

    def audit_values(self, values: dict[str, object]) -> dict[str, object]:
        config = values.pop("config", None)
        known = {name for names in channels.FIELDS.values() for name in names}
        other: dict[str, object] = {}
        if isinstance(config, dict):
            for key, value in config.items():
                if key in known:
                    values[f"config.{key}"] = value
                else:
                    other[key] = value
        elif config is not None:
            other[""] = config
        if other:
            values[CONFIG_OTHER] = other
        return values

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
    # The channel's pace (paging/pace.py): the theoretical arrival time of its next
    # message. Claims move it forward under this row's lock; a 429 pushes it past the
    # receiver's Retry-After.
    pace_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.channel}: {self.consecutive_failures} failures in a row"

    @property
    def failing(self) -> bool:
        return self.consecutive_failures >= self.FAILING_AFTER


class EscalationPolicy(Audited):
    """Ordered steps, each notifying channels after a delay; see paging/escalation.py."""

    # `version` counts the writes of the definition, which the trail records itself:
    # raising it is no edit, and showing it in a diff would be noise.
    audit = AuditSpec(quiet=frozenset({"version"}), skip=frozenset({"updated_at", "version"}))

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
        steps = list(self.steps.prefetch_related("channels", "schedules").order_by("position"))
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
                    delay=step.delay,
                    channels=tuple(sorted(c.pk for c in step.channels.all())),
                    schedules=tuple(sorted(s.pk for s in step.schedules.all())),
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


class EscalationStep(Audited):
    audit = AuditSpec(organization="policy__organization_id")

    policy = models.ForeignKey(EscalationPolicy, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField(default=0)
    delay = models.DurationField(
        default=timedelta(0),
        help_text="Wait after the previous step (the first step: after the alert opened).",
    )
    channels = models.ManyToManyField(NotificationChannel, related_name="steps", blank=True)
    # Whoever is on call in each, when the step fires, is emailed (docs/paging.md).
    schedules = models.ManyToManyField(
        "oncall.OnCallSchedule",
        related_name="steps",
        blank=True,
        help_text="Whoever is on call in these when the step fires is emailed.",
    )

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
    # A step's on-call schedule reaches people, not a channel: a row per person on call
    # (channel None, kind email, name "<schedule>: <username>"), or one with no
    # responder saying nobody was on call. `schedule` rebuilds the escalation's key.
    responder = models.ForeignKey(
        "oncall.Responder",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="notifications",
    )
    schedule = models.ForeignKey(
        "oncall.OnCallSchedule",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="notifications",
    )
    # The key of paging/escalation.py: one row per (alert, step, loop, reminder,
    # channel or responder, event).
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
            # One per key and destination. Partial, one per kind of destination: in a
            # unique constraint NULLs are distinct, so a NULL responder on a channel's
            # row (or channel on a person's) would let every duplicate in.
            models.UniqueConstraint(
                fields=["alert", "step", "loop", "reminder", "channel", "event"],
                condition=Q(channel__isnull=False),
                name="one_notification_per_key",
            ),
            models.UniqueConstraint(
                fields=["alert", "step", "loop", "reminder", "schedule", "responder", "event"],
                condition=Q(channel__isnull=True, responder__isnull=False),
                name="one_notification_per_person",
            ),
            models.UniqueConstraint(
                fields=["alert", "step", "loop", "reminder", "schedule", "event"],
                condition=Q(channel__isnull=True, responder__isnull=True, schedule__isnull=False),
                name="one_nobody_on_call_per_key",
            ),
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


# The start of every Alertmanager integration key, as `cpt_` starts an API token.
INTEGRATION_KEY_PREFIX = "amk_"


class AlertmanagerIntegration(Audited):
    """An Alertmanager that sends its alerts here (webhook payload version 4).

    It posts to `/api/v1/integrations/alertmanager/<key>/`, the key standing in for a
    header its webhook_configs cannot always send, or with a write token of the
    organisation. The key is shown once, when made, and stored hashed like API tokens.
    """

    audit = AuditSpec(secret=frozenset({"key_digest"}))

    organization = models.ForeignKey(
        "catalog.Organization", on_delete=models.CASCADE, related_name="alertmanager_integrations"
    )
    slug = models.SlugField(
        max_length=64, help_text="Unique in the organisation; ?integration=<slug> names it."
    )
    name = models.CharField(max_length=200, blank=True)
    service = models.ForeignKey(
        "catalog.Service",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="alertmanager_integrations",
        help_text="The service its alerts are about, if one.",
    )
    escalation_policy = models.ForeignKey(
        EscalationPolicy,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="alertmanager_integrations",
        help_text="Empty: the organisation's default policy.",
    )
    key_prefix = models.CharField(
        "key", max_length=16, editable=False, help_text="Shown to recognise the key."
    )
    key_digest = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["organization", "slug"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "slug"], name="one_alertmanager_integration_per_slug"
            )
        ]

    def __str__(self) -> str:
        return self.name or self.slug

    def new_key(self) -> str:
        """Give the integration a new key (the old one stops working once saved) and
        return it: the only time it is seen, since only its digest is stored."""
        plaintext = INTEGRATION_KEY_PREFIX + secrets.token_urlsafe(32)
        self.key_prefix = plaintext[:12]
        self.key_digest = token_digest(plaintext)
        return plaintext

    @classmethod
    def by_key(cls, plaintext: str) -> AlertmanagerIntegration | None:
        if not plaintext.startswith(INTEGRATION_KEY_PREFIX) or len(plaintext) > 200:
            return None
        return (
            cls.objects.select_related("organization", "service")
            .filter(key_digest=token_digest(plaintext))
            .first()
        )

    def clean(self) -> None:
        errors = {}
        for field in ("service", "escalation_policy"):
            related = getattr(self, field)
            if related is not None and related.organization_id != self.organization_id:
                errors[field] = "It belongs to another organisation."
        if errors:
            raise ValidationError(errors)


class IntegrationHealth(models.Model):
    """What an Alertmanager integration last received; written by the intake only."""

    integration = models.OneToOneField(
        AlertmanagerIntegration, on_delete=models.CASCADE, primary_key=True, related_name="health"
    )
    last_received_at = models.DateTimeField(null=True, blank=True)
    last_refused_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)

    def __str__(self) -> str:
        return f"{self.integration}: last received {self.last_received_at}"

    @property
    def refusing(self) -> bool:
        """The last payload was refused (none accepted since)."""
        return self.last_refused_at is not None and (
            self.last_received_at is None or self.last_refused_at > self.last_received_at
        )
