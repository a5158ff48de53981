"""The audit trail: events, the chain heads the sealer keeps, pseudonyms, retention.

An `AuditEvent` is written once, by the recorder, and sealed once, by the sealer
(`chain.py` explains why in two steps). Nothing else changes it: the application
refuses (and records the attempt), and on PostgreSQL a trigger refuses any UPDATE but
the seal and any DELETE outside the retention job (migration 0002).
"""

from __future__ import annotations

import datetime
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from controlplane.audit import policy
from controlplane.audit.audited import Audited, AuditSpec


class AuditRefused(PermissionError):
    """An edit or deletion of an audit event: never allowed outside retention."""


# Set only by the retention job around its deletes (retention.py).
_purging: ContextVar[bool] = ContextVar("audit_purging", default=False)


@contextmanager
def purging() -> Iterator[None]:
    token = _purging.set(True)
    try:
        yield
    finally:
        _purging.reset(token)


def _refuse(what: str, queryset: Any = None) -> None:
    from controlplane.audit import recorder

    recorder.record_refusal(what)
    raise AuditRefused(f"audit events cannot be {what}: the trail is append-only")


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs: Any) -> int:
        _refuse("changed")
        return 0

    def bulk_update(self, objs: Any, fields: Any, batch_size: int | None = None) -> int:
        _refuse("changed")
        return 0

    def bulk_create(self, objs: Any, *args: Any, **kwargs: Any) -> list[Any]:
        if kwargs.get("update_conflicts"):
            _refuse("changed")
        return super().bulk_create(objs, *args, **kwargs)

    def delete(self) -> tuple[int, dict[str, int]]:
        if not _purging.get():
            _refuse("deleted")
        return super().delete()


class AuditEvent(models.Model):
    # The chain: the organisation's id, 0 for events of no organisation (an erasure).
    chain = models.PositiveBigIntegerField(db_index=False)
    # Kept by id only, never cascaded: an organisation's trail outlives it.
    organization = models.ForeignKey(
        "catalog.Organization",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    at = models.DateTimeField(default=timezone.now)
    # An actor spec, people by pseudonym: "user:p_3f9a…", "token:12", "system:beat".
    actor = models.CharField(max_length=120)
    action = models.CharField(max_length=40)
    object_type = models.CharField(max_length=60)  # app_label.model_name
    object_id = models.CharField(max_length=64, blank=True)
    object_label = models.CharField(max_length=200, blank=True)
    diff = models.JSONField(default=dict, blank=True)
    request_id = models.CharField(max_length=128, blank=True)
    trace_id = models.CharField(max_length=32, blank=True)
    mac = models.CharField(max_length=64)
    # Written by the sealer, once.
    seq = models.BigIntegerField(null=True, blank=True)
    prev_hash = models.CharField(max_length=64, blank=True)
    hash = models.CharField(max_length=64, blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["chain", "seq"], name="audit_event_chain_seq"),
        ]
        indexes = [
            models.Index(fields=["organization", "-at"], name="audit_event_org_at"),
            models.Index(fields=["object_type", "object_id"], name="audit_event_object"),
            models.Index(
                fields=["chain", "id"],
                name="audit_event_unsealed",
                condition=models.Q(seq__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.object_type} {self.object_label or self.object_id}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            _refuse("changed")
        # Always an INSERT: an instance made with the id of an existing event would
        # otherwise become an UPDATE of it.
        kwargs.pop("force_update", None)
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        if not _purging.get():
            _refuse("deleted")
        return super().delete(*args, **kwargs)

    def content(self) -> dict[str, Any]:
        """What the MAC covers, as chain.canonical reads it."""
        from controlplane.audit import chain

        return content_of({name: getattr(self, name) for name in chain.CONTENT_FIELDS})


def content_of(values: Mapping[str, Any]) -> dict[str, Any]:
    """An event's content from its stored values (a row, or `values()` of one): the
    time as ISO 8601 in UTC, the same text whatever zone the database hands it in."""
    content = dict(values)
    content["at"] = values["at"].astimezone(datetime.UTC).isoformat()
    return content


class ChainHead(models.Model):
    """The last sealed event of a chain; the sealer holds its row lock while it seals."""

    chain = models.PositiveBigIntegerField(primary_key=True)
    seq = models.BigIntegerField(default=0)
    hash = models.CharField(max_length=64, blank=True)
    sealed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"chain {self.chain} sealed to {self.seq}"


def new_pseudonym() -> str:
    return "p_" + secrets.token_hex(8)


class Pseudonym(models.Model):
    """The only link from a pseudonym in the trail and the logs to a person. Erasure
    deletes the row: the trail stays whole and verifiable, and names nobody."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="pseudonym"
    )
    value = models.CharField(max_length=32, unique=True, default=new_pseudonym, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    def __str__(self) -> str:
        return self.value


class RetentionOverride(Audited):
    """One organisation keeping one category longer or shorter than the default."""

    audit = AuditSpec()

    # The stored value is the category's name ("audit_events"), as RETENTION_DAYS spells it.
    CATEGORY_CHOICES = [(name, name.replace("_", " ")) for name in policy.CATEGORIES]

    organization = models.ForeignKey(
        "catalog.Organization", on_delete=models.CASCADE, related_name="retention_overrides"
    )
    category = models.CharField(max_length=32, choices=CATEGORY_CHOICES)
    days = models.PositiveIntegerField(help_text=f"At least 1, at most {policy.MAX_DAYS}.")

    class Meta:
        ordering = ["organization", "category"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "category"], name="retention_override_once"
            ),
            models.CheckConstraint(
                condition=models.Q(days__gte=1) & models.Q(days__lte=policy.MAX_DAYS),
                name="retention_override_days",
            ),
            models.CheckConstraint(
                condition=models.Q(category__in=list(policy.CATEGORIES)),
                name="retention_override_category",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.category}: {self.days} days"

    def clean(self) -> None:
        try:
            policy.check_days(self.category, self.days)
        except policy.PolicyError as error:
            raise ValidationError({error.field: str(error)}) from None

    def save(self, *args: Any, **kwargs: Any) -> None:
        # Refused at save, whatever the path (the admin and the API clean first; a
        # script may not): the database's own constraint only knows 1 to MAX_DAYS.
        self.clean()
        super().save(*args, **kwargs)
