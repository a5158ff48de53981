"""Who may see and change what: the organisation walls, in one place.

Pages, the admin and the API all ask these functions, so a wall cannot be
forgotten in one of them.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db.models import Q, QuerySet

from controlplane.catalog.models import Membership, Organization, Role

READ_ROLES = (Role.MANAGER, Role.RESPONDER, Role.VIEWER)
RESPOND_ROLES = (Role.MANAGER, Role.RESPONDER)
MANAGE_ROLES = (Role.MANAGER,)


def organization_ids(
    user: AbstractBaseUser | AnonymousUser, roles: Iterable[str] = READ_ROLES
) -> set[int] | None:
    """The organisations the user holds one of the roles in; None means all (superuser)."""
    if not user.is_authenticated or not user.is_active:
        return set()
    if user.is_superuser:
        return None
    cache = getattr(user, "_organization_roles", None)
    if cache is None:
        cache = dict(Membership.objects.filter(user=user).values_list("organization_id", "role"))
        user._organization_roles = cache
    wanted = set(roles)
    return {org_id for org_id, role in cache.items() if role in wanted}


def scope(
    queryset: QuerySet,
    allowed: set[int] | None,
    field: str = "organization",
    shared: bool = False,
) -> QuerySet:
    """Narrow a queryset to the allowed organisations (None: no narrowing).

    With shared=True, rows whose organisation is empty (shared by every
    organisation, e.g. built-in runbooks) are visible too.
    """
    if allowed is None:
        return queryset
    condition = Q(**{f"{field}__in": allowed})
    if shared:
        condition |= Q(**{f"{field}__isnull": True})
    return queryset.filter(condition)


def organizations(user: AbstractBaseUser | AnonymousUser, roles=READ_ROLES) -> QuerySet:
    return scope(Organization.objects.all(), organization_ids(user, roles), field="pk")


def has_role(user, organization_id: int | None, roles: Iterable[str]) -> bool:
    allowed = organization_ids(user, roles)
    return allowed is None or (organization_id is not None and organization_id in allowed)
