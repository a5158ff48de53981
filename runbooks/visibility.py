"""Which runbooks a reader sees, and which one a slug means to them.

The organisation walls themselves come from controlplane.catalog.tenancy; this module
adds the runbook rule on top: an organisation's own runbook hides the shared one with
the same slug, so a team can adapt a shared runbook without two pages competing.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db.models import QuerySet

from controlplane.catalog import tenancy
from runbooks.models import Runbook


def readable(queryset: QuerySet, allowed: set[int] | None, preferred: Iterable[int]) -> QuerySet:
    """Runbooks of the allowed organisations (None: all) and shared ones not overridden."""
    if allowed is not None and not allowed:
        # Shared runbooks are for members of some organisation, not for any account.
        return queryset.none()
    return without_overridden(tenancy.scope(queryset, allowed, shared=True), preferred)


def without_overridden(queryset: QuerySet, preferred: Iterable[int]) -> QuerySet:
    """Leave out shared runbooks that one of the preferred organisations replaces."""
    preferred = set(preferred)
    if not preferred:
        return queryset
    overriding = Runbook.objects.filter(organization__in=preferred).values("slug")
    return queryset.exclude(organization__isnull=True, slug__in=overriding)


def visible_to(
    user: AbstractBaseUser | AnonymousUser, queryset: QuerySet | None = None
) -> QuerySet:
    """Runbooks a signed-in person may read in the pages."""
    queryset = Runbook.objects.all() if queryset is None else queryset
    allowed = tenancy.organization_ids(user)
    return readable(queryset, allowed, allowed or ())


def choose(candidates: Iterable[Runbook], preferred: Iterable[int]) -> Runbook | None:
    """Of several runbooks with one slug: the reader's organisation's, then the shared one.

    Only superusers and members of several organisations can see more than one.
    """
    preferred = set(preferred)

    def rank(runbook: Runbook) -> tuple[int, str]:
        if runbook.organization_id in preferred:
            return 0, runbook.organization.slug
        if runbook.organization_id is None:
            return 1, ""
        return 2, runbook.organization.slug

    return min(candidates, key=rank, default=None)


def resolve(
    user: AbstractBaseUser | AnonymousUser, slug: str, queryset: QuerySet | None = None
) -> Runbook | None:
    queryset = Runbook.objects.all() if queryset is None else queryset
    candidates = visible_to(user, queryset.filter(slug=slug).select_related("organization"))
    return choose(candidates, tenancy.organization_ids(user) or ())
