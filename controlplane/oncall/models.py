"""On-call: responders, schedules read from ICS calendars, and their shifts.

Definition apart from state: a manager edits `OnCallSchedule` (where its calendars
are, its zone, how often to read them); the synchroniser alone writes its
`ScheduleSync` (how reading went, the validators of the feeds, the last good bodies)
and replaces its `Shift` rows. A `Responder` is a member's on-call profile, made the
first time a shift or a setting needs it.
"""

from __future__ import annotations

import secrets
import zoneinfo
from datetime import timedelta
from functools import cache
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.urls import reverse

from controlplane.audit.audited import Audited, AuditSpec
from controlplane.catalog import outbound

# The most text a pasted calendar may hold, as a fetched one (calendars.TooLarge).
MOST_ICS_BYTES = 2 * 1024 * 1024


@cache
def known_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def check_zone(name: str) -> None:
    if name not in known_zones():
        raise ValidationError(f"{name!r} is not an IANA time zone (e.g. Europe/Paris, UTC).")


class Responder(Audited):
    """A member of an organisation as someone to reach when on call."""

    audit = AuditSpec(people=frozenset({"user_id"}), personal=frozenset({"slack_member_id"}))

    organization = models.ForeignKey(
        "catalog.Organization", on_delete=models.CASCADE, related_name="responders"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="responders"
    )
    time_zone = models.CharField(
        max_length=64, default="UTC", validators=[check_zone], help_text="IANA name."
    )
    slack_member_id = models.CharField(
        max_length=32,
        blank=True,
        help_text="e.g. U012AB3CD: the step's Slack messages mention them when on call.",
    )

    class Meta:
        ordering = ["organization", "user__username"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "user"], name="one_responder_per_member"
            )
        ]

    def __str__(self) -> str:
        return self.user.get_username()

    def audit_label(self) -> str:
        # The trail names people by pseudonym only (docs/audit.md): no username here.
        return f"responder #{self.pk}"

    def clean(self) -> None:
        if (
            self.organization_id
            and self.user_id
            and not self.organization.memberships.filter(user_id=self.user_id).exists()
        ):
            raise ValidationError({"user": "Not a member of this organisation."})


class OnCallSchedule(Audited):
    # A pasted calendar names its people (SUMMARY, ATTENDEE): personal, never shown.
    audit = AuditSpec(
        secret=frozenset({"export_key", "ics_url", "override_ics_url"}),
        personal=frozenset({"ics_text", "override_ics_text"}),
    )

    organization = models.ForeignKey(
        "catalog.Organization", on_delete=models.CASCADE, related_name="oncall_schedules"
    )
    slug = models.SlugField(max_length=64, help_text="Unique in the organisation.")
    name = models.CharField(max_length=200)
    time_zone = models.CharField(
        max_length=64,
        default="UTC",
        validators=[check_zone],
        help_text="Floating times and all-day events of the calendars are read in it.",
    )
    # Char fields: check_feed_url says what is wrong with an address, in one message.
    ics_url = models.CharField("ICS URL", max_length=2000, blank=True)
    ics_text = models.TextField("ICS text", blank=True, help_text="Or paste the calendar.")
    override_ics_url = models.CharField("override ICS URL", max_length=2000, blank=True)
    override_ics_text = models.TextField(
        "override ICS text",
        blank=True,
        help_text="Events here win over the main calendar's while they last.",
    )
    sync_interval = models.DurationField(
        default=timedelta(minutes=15),
        validators=[
            MinValueValidator(timedelta(minutes=1)),
            MaxValueValidator(timedelta(days=1)),
        ],
        help_text="How often the calendars are read again (1 minute to 1 day).",
    )
    # The credential of the schedule's ICS export: whoever holds the URL reads it.
    export_key = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["organization", "slug"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "slug"], name="one_schedule_per_slug")
        ]

    def __str__(self) -> str:
        return self.name or self.slug

    def save(self, *args, **kwargs) -> None:
        if not self.export_key:
            self.export_key = new_export_key()
        super().save(*args, **kwargs)

    def get_absolute_url(self) -> str:
        return reverse("oncall:detail", args=[self.slug])

    def export_path(self) -> str:
        return reverse("oncall:export", args=[self.export_key])

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)

    def clean(self) -> None:
        errors: dict[str, str] = {}
        for url_field, text_field in (
            ("ics_url", "ics_text"),
            ("override_ics_url", "override_ics_text"),
        ):
            url, text = getattr(self, url_field), getattr(self, text_field)
            if url and text.strip():
                errors[text_field] = "Give the calendar's URL or its text, not both."
            if len(text.encode()) > MOST_ICS_BYTES:
                errors[text_field] = f"At most {MOST_ICS_BYTES // (1024 * 1024)} MiB."
            if url:
                problem = check_feed_url(url)
                if problem:
                    errors[url_field] = problem
        if not self.ics_url and not self.ics_text.strip():
            errors.setdefault("ics_url", "Give the calendar's URL or paste its text.")
        if errors:
            raise ValidationError(errors)


def new_export_key() -> str:
    return secrets.token_urlsafe(32)


def check_feed_url(url: str) -> str:
    """Why a calendar URL is refused now ('' when it is not); a host name is judged
    again, as DNS answers, on every fetch."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises for a port that is not a number
    except ValueError:
        return "This is not a URL."
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "Use an http:// or https:// address (webcal:// is https:// here)."
    if parts.username or parts.password:
        return "Put no credentials in the address; use the calendar's secret URL."
    try:
        outbound.check_literal(parts.hostname or "", outbound.WEBHOOKS)
    except outbound.Refused as refused:
        return refused.message
    return ""


class ScheduleSync(models.Model):
    """How reading a schedule's calendars has gone; written by the synchroniser only."""

    schedule = models.OneToOneField(
        OnCallSchedule, on_delete=models.CASCADE, primary_key=True, related_name="sync"
    )
    # When the next synchronisation is due; an edit of the schedule makes it due now.
    due_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    # Names events gave that are no member (rota.Unknown), as text, for the pages.
    unknown_names = models.JSONField(default=list, blank=True)
    # The conditional-request validators and last good body of each feed: a 304 still
    # needs the body, since the horizon of shifts moves on every run.
    main_etag = models.CharField(max_length=300, blank=True)
    main_last_modified = models.CharField(max_length=100, blank=True)
    main_body = models.BinaryField(blank=True, default=b"")
    override_etag = models.CharField(max_length=300, blank=True)
    override_last_modified = models.CharField(max_length=100, blank=True)
    override_body = models.BinaryField(blank=True, default=b"")
    # The trace of the last success, or of the first failure of those in a row.
    trace_id = models.CharField(max_length=32, blank=True)

    def __str__(self) -> str:
        return f"{self.schedule}: synchronised {self.last_synced_at}"

    @property
    def failing(self) -> bool:
        return self.consecutive_failures > 0


class Shift(models.Model):
    """Someone on call from `start` to `end` (exclusive), overrides already applied."""

    schedule = models.ForeignKey(OnCallSchedule, on_delete=models.CASCADE, related_name="shifts")
    responder = models.ForeignKey(Responder, on_delete=models.CASCADE, related_name="shifts")
    start = models.DateTimeField()
    end = models.DateTimeField()
    uid = models.CharField("source event UID", max_length=300, blank=True)
    override = models.BooleanField(default=False)

    class Meta:
        ordering = ["schedule", "start", "end", "responder"]
        indexes = [models.Index(fields=["schedule", "start", "end"])]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(end__gt=models.F("start")), name="shift_ends_after_start"
            )
        ]

    def __str__(self) -> str:
        return f"{self.responder} {self.start:%Y-%m-%d %H:%M} → {self.end:%Y-%m-%d %H:%M}"
