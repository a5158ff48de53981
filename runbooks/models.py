"""Runbooks and their history."""

from __future__ import annotations

import datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from controlplane.audit.audited import Audited, AuditSpec
from controlplane.catalog.models import Organization
from controlplane.catalog.validators import contains_nul
from runbooks import rendering
from runbooks.content import content_digest, is_slug, normalize_body

# The writing guide asks for a review at least every six months.
REVIEW_INTERVAL = datetime.timedelta(days=183)


class Via(models.TextChoices):
    ADMIN = "admin", "admin"
    SYNC = "sync", "sync_runbooks"
    API = "api", "API"


class Runbook(Audited):
    audit = AuditSpec(
        people=frozenset({"updated_by_id"}),
        # sync_runbooks' bookkeeping (runbooks/sync.py): recording a file as synced is
        # not an edit; the digest says nothing a reader needs.
        quiet=frozenset({"synced_digest", "source_path"}),
        skip=frozenset(
            {
                "created_at",
                "updated_at",
                "body_html",
                "sections",
                "rendering_version",
                "synced_digest",
            }
        ),
    )

    organization = models.ForeignKey(
        Organization,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="runbooks",
        help_text="Empty: shared, every organisation sees it.",
    )
    slug = models.SlugField(
        max_length=64, help_text="Lowercase letters, digits and hyphens; links use it."
    )
    title = models.CharField(max_length=200)
    summary = models.TextField(
        max_length=600, help_text="One sentence: what is wrong and what to do first."
    )
    body = models.TextField(help_text="Markdown. Sections: Symptoms, Triage, Escalation, ...")
    owner = models.CharField("owner team", max_length=100)
    tags = models.JSONField(default=list, blank=True, help_text="A list of slugs.")
    reviewed_at = models.DateField("last reviewed", null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )

    # The HTML is rendered when the body is saved, so a page view does no Markdown work.
    body_html = models.TextField(editable=False, default="")
    sections = models.JSONField(editable=False, default=list)
    rendering_version = models.PositiveSmallIntegerField(editable=False, default=0)

    # sync_runbooks bookkeeping: the content digest as of the last sync tells an edit in
    # the admin (current digest differs) from a changed file (file digest differs).
    source_path = models.CharField(max_length=500, blank=True, editable=False)
    synced_digest = models.CharField(max_length=64, blank=True, editable=False)

    class Meta:
        ordering = ["slug", "organization_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "slug"],
                name="runbook_slug_per_org",
                violation_error_message="This organisation already has a runbook with this slug.",
            ),
            # NULLs are distinct in a unique index, so shared runbooks need their own.
            models.UniqueConstraint(
                fields=["slug"],
                condition=Q(organization__isnull=True),
                name="shared_runbook_slug",
                violation_error_message="A shared runbook with this slug already exists.",
            ),
        ]

    def __str__(self) -> str:
        return self.title

    def save(self, *args, **kwargs) -> None:
        self.body = normalize_body(self.body)
        rendered = rendering.render_runbook(self.body)
        self.body_html = rendered.html
        self.sections = [[section.id, section.title] for section in rendered.sections]
        self.rendering_version = rendering.VERSION
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "body" in update_fields:
            kwargs["update_fields"] = {*update_fields, "body_html", "sections", "rendering_version"}
        super().save(*args, **kwargs)

    def get_absolute_url(self) -> str:
        return reverse("runbooks:page", args=[self.slug])

    def clean(self) -> None:
        errors = {}
        # PostgreSQL cannot store NUL; a file synced from disk may well carry one.
        for field in ("slug", "title", "summary", "body", "owner", "tags"):
            if contains_nul(getattr(self, field)):
                errors[field] = "It contains a NUL character, which cannot be stored."
        if errors:
            raise ValidationError(errors)
        if self.slug and not is_slug(self.slug):
            errors["slug"] = "Use lowercase letters, digits and single hyphens, e.g. api-5xx."
        if not (self.title or "").strip():
            errors["title"] = "A runbook needs a title."
        if not isinstance(self.tags, list):
            errors["tags"] = "Tags are a list of slugs."
        else:
            bad = [tag for tag in self.tags if not is_slug(tag)]
            if bad:
                errors["tags"] = "Tags are lowercase words joined by hyphens, not " + ", ".join(
                    map(repr, bad)
                )
        if errors:
            raise ValidationError(errors)

    def save_change(self, changed_by=None, via: str = Via.ADMIN) -> RunbookRevision:
        """Save an edit and the revision that records it, together."""
        with transaction.atomic():
            self.updated_at = timezone.now()
            self.updated_by = changed_by
            self.save()
            return RunbookRevision.objects.create(
                runbook=self,
                title=self.title,
                summary=self.summary,
                body=self.body,
                tags=list(self.tags),
                owner=self.owner,
                reviewed_at=self.reviewed_at,
                changed_by=changed_by,
                changed_at=self.updated_at,
                via=via,
            )

    @property
    def digest(self) -> str:
        return content_digest(
            title=self.title,
            summary=self.summary,
            body=self.body,
            tags=self.tags,
            owner=self.owner,
            reviewed_at=self.reviewed_at,
        )

    @property
    def html(self) -> str:
        if self.rendering_version == rendering.VERSION:
            return self.body_html
        return rendering.render_runbook(self.body).html

    @property
    def table_of_contents(self) -> list[rendering.Section]:
        if self.rendering_version == rendering.VERSION:
            return [rendering.Section(id=i, title=t) for i, t in self.sections]
        return rendering.render_runbook(self.body).sections

    @property
    def is_shared(self) -> bool:
        return self.organization_id is None

    def review_overdue(self, today: datetime.date | None = None) -> bool:
        today = today or timezone.localdate()
        return self.reviewed_at is None or today - self.reviewed_at > REVIEW_INTERVAL


class RunbookRevision(models.Model):
    """A runbook as it was after one change: who, when, through what, and the text."""

    runbook = models.ForeignKey(Runbook, on_delete=models.CASCADE, related_name="revisions")
    title = models.CharField(max_length=200)
    summary = models.TextField()
    body = models.TextField()
    tags = models.JSONField(default=list)
    owner = models.CharField(max_length=100)
    reviewed_at = models.DateField(null=True, blank=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    changed_at = models.DateTimeField(default=timezone.now)
    via = models.CharField(max_length=8, choices=Via.choices)

    class Meta:
        ordering = ["-changed_at", "-pk"]
        indexes = [models.Index(fields=["runbook", "-changed_at"], name="revision_by_runbook")]

    def __str__(self) -> str:
        return f"{self.runbook.slug} at {self.changed_at:%Y-%m-%d %H:%M} via {self.via}"

    def get_absolute_url(self) -> str:
        return reverse("runbooks:revision", args=[self.runbook.slug, self.pk])

    @property
    def html(self) -> str:
        return rendering.render_runbook(self.body).html
