from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import SAFE_METHODS, BasePermission

from controlplane.api.access import readable_organizations, writable_organizations
from controlplane.catalog.models import ApiToken


class OrganizationAccess(BasePermission):
    """Reads for any member or token; writes for managers and write tokens.

    Objects of other organisations never reach this check: the scoped queryset
    answers 404 for them, so their existence does not leak.
    """

    def has_permission(self, request, view) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False
        if request.method in SAFE_METHODS:
            readable = readable_organizations(request)
            return readable is None or bool(readable)
        if isinstance(request.auth, ApiToken) and not request.auth.can_write:
            raise PermissionDenied(
                "This token is read-only: writes need a token with the write scope."
            )
        writable = writable_organizations(request)
        if writable is not None and not writable:
            raise PermissionDenied("Only managers of an organisation may change it.")
        return True

    def has_object_permission(self, request, view, obj) -> bool:
        if request.method in SAFE_METHODS:
            return True
        field = getattr(view, "organization_field", "organization")
        org_id = getattr(obj, f"{field}_id", None)
        writable = writable_organizations(request)
        if writable is None:
            return True
        if org_id not in writable:
            raise PermissionDenied("Only managers of its organisation may change this.")
        return True
