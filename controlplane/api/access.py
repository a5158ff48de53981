"""What the caller of an API request may read and write, by organisation."""

from __future__ import annotations

from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

from controlplane.catalog import tenancy
from controlplane.catalog.models import ApiToken, Organization


def readable_organizations(request: Request) -> set[int] | None:
    """Organisation ids the caller may read; None means every one (a superuser's session)."""
    if isinstance(request.auth, ApiToken):
        return {request.auth.organization_id}
    return tenancy.organization_ids(request.user)


def writable_organizations(request: Request) -> set[int] | None:
    if isinstance(request.auth, ApiToken):
        return {request.auth.organization_id} if request.auth.can_write else set()
    return tenancy.organization_ids(request.user, tenancy.MANAGE_ROLES)


def target_organization(request: Request) -> Organization:
    """The organisation a new object is created in.

    A token names it; a session user managing several organisations names it with
    ?organization=<slug>.
    """
    if isinstance(request.auth, ApiToken):
        return request.auth.organization
    writable = writable_organizations(request)
    queryset = tenancy.scope(Organization.objects.all(), writable, field="pk")
    slug = request.query_params.get("organization")
    if slug:
        queryset = queryset.filter(slug=slug)
    candidates = list(queryset[:2])
    if len(candidates) != 1:
        raise ValidationError(
            {"organization": ["Name the organisation with ?organization=<slug>."]}
        )
    return candidates[0]
