"""Organisation scoping for every API endpoint: subclass OrganizationScopedViewSet."""

from __future__ import annotations

from django.http import Http404
from rest_framework import viewsets
from rest_framework.exceptions import ValidationError

from controlplane.api.access import readable_organizations
from controlplane.api.parsers import JSONParser
from controlplane.catalog import tenancy
from observability import context


class OrganizationScopedViewSet(viewsets.GenericViewSet):
    """Every query goes through get_queryset, which is narrowed here and only here."""

    organization_field = "organization"
    shared_rows = False
    # JSON only: form encoding would turn an absent boolean into False and let a
    # repeated field silently win, so the same body would mean two things.
    parser_classes = [JSONParser]

    def get_queryset(self):
        queryset = super().get_queryset()
        return tenancy.scope(
            queryset,
            readable_organizations(self.request),
            self.organization_field,
            shared=self.shared_rows,
        )

    def get_object(self):
        """The object named in the URL, among the caller's organisations.

        Names (slugs, keys) are unique per organisation only: a superuser or a member
        of several organisations names the one meant with ?organization=<slug>.
        """
        field = self.lookup_field
        value = self.kwargs[self.lookup_url_kwarg or field]
        queryset = self.filter_queryset(self.get_queryset()).filter(**{field: value})
        slug = self.request.query_params.get("organization")
        if slug:
            queryset = queryset.filter(**{f"{self.organization_field}__slug": slug})
        found = list(queryset[:2])
        if not found:
            raise Http404(f"No {queryset.model._meta.object_name} matches the given query.")
        if len(found) > 1:
            raise ValidationError(
                {
                    "organization": [
                        f"Several of your organisations have {value!r}: "
                        "name one with ?organization=<slug>."
                    ]
                }
            )
        obj = found[0]
        self.check_object_permissions(self.request, obj)
        org_id = getattr(obj, f"{self.organization_field}_id", None)
        if org_id is not None:
            context.bind(organization_id=str(org_id))
        return obj
