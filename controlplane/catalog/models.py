"""Organisations and what belongs to them: members, services, metric sources, API tokens."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from controlplane.audit.audited import Audited, AuditSpec
from controlplane.catalog.validators import (
    validate_header_value,
    validate_http_url,
    validate_source_address,
)

TOKEN_PREFIX = "cpt_"
# Writing last_used_at on every request would turn every read into a write.
TOKEN_TOUCH_INTERVAL = timedelta(minutes=1)


class Organization(Audited):
    audit = AuditSpec(organization="pk")

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    MANAGER = "manager", "Manager (edits everything of the organisation)"
    RESPONDER = "responder", "Responder (reads, acknowledges alerts)"
    VIEWER = "viewer", "Viewer (reads)"


class Membership(Audited):
    audit = AuditSpec(people=frozenset({"user_id"}))

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="memberships"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "user"], name="one_membership_per_org")
        ]

    def __str__(self) -> str:
        return f"{self.user.get_username()} is {self.role} of {self.organization.slug}"

    def audit_label(self) -> str:
        # The trail names people by pseudonym only (docs/audit.md): no username here.
        return f"membership #{self.pk} ({self.role})"


class Service(Audited):
    audit = AuditSpec()

    class Tier(models.IntegerChoices):
        CRITICAL = 1, "Tier 1 (customer facing, pages at night)"
        IMPORTANT = 2, "Tier 2 (business hours)"
        SUPPORTING = 3, "Tier 3 (best effort)"

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="services"
    )
    slug = models.SlugField(max_length=64)
    name = models.CharField(max_length=200)
    tier = models.PositiveSmallIntegerField(choices=Tier.choices, default=Tier.IMPORTANT)
    team = models.CharField("owning team", max_length=100, blank=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["organization", "slug"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "slug"], name="service_slug_per_org")
        ]

    def __str__(self) -> str:
        return self.name


class MetricSource(Audited):
    audit = AuditSpec(secret=frozenset({"auth_header"}))

    class Kind(models.TextChoices):
        PROMETHEUS = "prometheus", "Prometheus (or Thanos, Mimir: the same query API)"

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="metric_sources"
    )
    name = models.SlugField(max_length=64, help_text="How rules and the API name this source.")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.PROMETHEUS)
    url = models.CharField(
        "base URL",
        max_length=500,
        validators=[validate_http_url],
        help_text="e.g. http://prometheus:9090",
    )
    # A query that outlives this holds a worker that other organisations' rules wait
    # for; evaluation also caps it at the rule's interval (docs/alerting.md).
    LONGEST_TIMEOUT = 30.0

    timeout = models.FloatField(
        "timeout (seconds)",
        default=10.0,
        validators=[MinValueValidator(0.1), MaxValueValidator(LONGEST_TIMEOUT)],
        help_text="How long a query may take: at most 30 s, and never longer than the "
        "interval of the rule that asks.",
    )
    auth_header = models.CharField(
        max_length=1000,
        blank=True,
        help_text="Sent as the Authorization header, e.g. 'Bearer …'. Never shown again.",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["organization", "name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="source_name_per_org")
        ]

    def __str__(self) -> str:
        return self.name

    # Authorization schemes a masked header may name (IANA's registry, common tokens).
    AUTH_SCHEMES = frozenset({"basic", "bearer", "digest", "negotiate", "token", "apikey"})

    @property
    def masked_auth_header(self) -> str:
        """The header with none of its credential: "Bearer ****", or "****".

        Even a few characters help whoever guesses the rest, and tell a reader which of
        several known tokens is in use; the scheme is shown only when it is a known one,
        as a token pasted without a scheme would otherwise show its first word.
        """
        if not self.auth_header:
            return ""
        scheme, _, credential = self.auth_header.partition(" ")
        if credential and scheme.lower() in self.AUTH_SCHEMES:
            return f"{scheme} ****"
        return "****"

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        if "\n" in self.auth_header or "\r" in self.auth_header:
            errors["auth_header"] = ["A header value cannot contain line breaks."]
        else:
            try:
                validate_header_value(self.auth_header)
            except ValidationError as error:
                errors["auth_header"] = error.messages
        try:
            validate_source_address(self.url)
        except ValidationError as error:
            errors["url"] = error.messages
        if "url" not in errors and self._credential_follows_a_new_host():
            errors["auth_header"] = [
                "The auth header goes only to the host it was saved for: enter it again "
                "(or clear it) to send it to the new address."
            ]
        if errors:
            raise ValidationError(errors)

    # Set by the admin form and the API when this save names the auth header itself.
    auth_header_given = False

    def _credential_follows_a_new_host(self) -> bool:
        """A stored header, kept as it was, while the URL now points elsewhere: whoever may
        edit the URL would otherwise receive a credential nobody can read back."""
        if self.pk is None or not self.auth_header or self.auth_header_given:
            return False
        stored = MetricSource.objects.filter(pk=self.pk).values_list("url", "auth_header").first()
        if stored is None or stored[1] != self.auth_header:
            return False
        return _origin(stored[0]) != _origin(self.url)


def _origin(url: str) -> tuple[str, str, int | None]:
    """Where a URL sends its requests: scheme, host and port (the default one spelt out)."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port or default


class SourceHealth(models.Model):
    """What the evaluator last learnt of a source: written by `catalog.sources` only.

    Kept apart from `MetricSource` so that saving a source in the admin or the API
    can never write back health it read a moment ago (which would restart the
    `source.down` clock); a failing source makes its rules `unknown`.
    """

    source = models.OneToOneField(
        MetricSource, on_delete=models.CASCADE, primary_key=True, related_name="health"
    )
    failing_since = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    # The circuit breaker (`catalog.circuit`): a source that keeps failing to answer is
    # not asked again until `retry_at`, and then by one probe at a time (`probe_until`),
    # so a dead or black-hole source holds no worker beyond that probe.
    consecutive_failures = models.PositiveIntegerField(default=0)
    retry_at = models.DateTimeField(null=True, blank=True)
    probe_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "source health"
        indexes = [
            models.Index(
                fields=["failing_since"],
                condition=models.Q(failing_since__isnull=False),
                name="source_failing",
            )
        ]

    def __str__(self) -> str:
        return f"{self.source_id}: {'failing' if self.failing_since else 'healthy'}"


def token_digest(plaintext: str) -> str:
    # Tokens carry 256 bits of randomness, so a fast hash is enough: there is nothing to
    # brute-force, and a slow hash would cost every API request.
    return hashlib.sha256(plaintext.encode()).hexdigest()


class ApiToken(Audited):
    audit = AuditSpec(
        secret=frozenset({"digest"}),
        people=frozenset({"created_by_id"}),
        quiet=frozenset({"last_used_at"}),
        # Its last use is state the authentication keeps, not part of an edit.
        skip=frozenset({"created_at", "last_used_at"}),
    )

    class Scope(models.TextChoices):
        READ = "read", "Read"
        WRITE = "write", "Read and write"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="tokens")
    name = models.CharField(max_length=100, blank=True)
    scope = models.CharField(max_length=8, choices=Scope.choices, default=Scope.READ)
    prefix = models.CharField(max_length=16, editable=False, help_text="Shown to recognise it.")
    digest = models.CharField(max_length=64, unique=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, editable=False
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "API token"
        ordering = ["organization", "-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name or self.scope})"

    @classmethod
    def issue(
        cls,
        organization: Organization,
        scope: str,
        name: str = "",
        created_by: AbstractBaseUser | None = None,
    ) -> tuple[ApiToken, str]:
        """Create a token; the plaintext is returned once and never stored."""
        plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token = cls(
            organization=organization,
            scope=scope,
            name=name,
            created_by=created_by,
            prefix=plaintext[:12],
            digest=token_digest(plaintext),
        )
        token.full_clean()
        token.save()
        return token, plaintext

    @classmethod
    def authenticate(cls, plaintext: str) -> ApiToken | None:
        if not plaintext.startswith(TOKEN_PREFIX) or len(plaintext) > 200:
            return None
        token = (
            cls.objects.select_related("organization")
            .filter(digest=token_digest(plaintext), revoked_at__isnull=True)
            .first()
        )
        if token is not None:
            token.touch()
        return token

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @property
    def can_write(self) -> bool:
        return self.is_active and self.scope == self.Scope.WRITE

    def audit_action(self, action: str, before: dict | None, after: dict | None) -> str:
        if action == "updated" and before and after:
            if before.get("revoked_at") is None and after.get("revoked_at") is not None:
                return "token.revoked"
        if action == "created":
            return "token.created"
        return action

    def touch(self) -> None:
        now = timezone.now()
        if self.last_used_at is None or now - self.last_used_at > TOKEN_TOUCH_INTERVAL:
            ApiToken.objects.filter(pk=self.pk).update(last_used_at=now)
            self.last_used_at = now

    def revoke(self) -> None:
        if self.revoked_at is None:
            self.revoked_at = timezone.now()
            ApiToken.objects.filter(pk=self.pk).update(revoked_at=self.revoked_at)


class WorkerHeartbeat(models.Model):
    """A Celery worker ran beat's `controlplane.heartbeat` task at `seen_at`.

    `/healthz?worker=1` reads the newest row instead of waiting on a probe task, so the
    deep check costs one indexed read and can never hold a web worker: a fresh row
    proves beat schedules and a worker consumes.
    """

    worker = models.CharField(max_length=255, primary_key=True)
    seen_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-seen_at"]

    def __str__(self) -> str:
        return f"{self.worker} at {self.seen_at:%Y-%m-%d %H:%M:%S}"
