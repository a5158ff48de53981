"""Organisation scoping for every API endpoint: subclass OrganizationScopedViewSet."""

from __future__ import annotations

from rest_framework import parsers, viewsets

from controlplane.api.access import readable_organizations
from controlplane.api.parsers import JSONParser
from controlplane.catalog import tenancy
from observability import context


class OrganizationScopedViewSet(viewsets.GenericViewSet):
    """Every query goes through get_queryset, which is narrowed here and only here."""

    organization_field = "organization"
    shared_rows = False
    parser_classes = [JSONParser, parsers.FormParser, parsers.MultiPartParser]

    def get_queryset(self):
        queryset = super().get_queryset()
        return tenancy.scope(
            queryset,
            readable_organizations(self.request),
            self.organization_field,
            shared=self.shared_rows,
        )

    def get_object(self):
        obj = super().get_object()
        org_id = getattr(obj, f"{self.organization_field}_id", None)
        if org_id is not None:
            context.bind(organization_id=str(org_id))
        return obj
