"""Organisation scoping for every API endpoint: subclass OrganizationScopedViewSet."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from django.http import Http404
from rest_framework import viewsets
from rest_framework.exceptions import ValidationError

from controlplane.api.access import readable_organizations
from controlplane.api.parsers import JSONParser
from controlplane.catalog import actors, tenancy
from controlplane.catalog.models import ApiToken
from observability import context


class OrganizationScopedViewSet(viewsets.GenericViewSet):
    """Every query goes through get_queryset, which is narrowed here and only here."""

    organization_field = "organization"
    shared_rows = False
    # JSON only: form encoding would turn an absent boolean into False and let a
    # repeated field silently win, so the same body would mean two things.
    parser_classes = [JSONParser]

    def initial(self, request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)  # authenticates
        # A token acts in its own name for whatever the request changes, signals included.
        if isinstance(request.auth, ApiToken):
            self._acting = actors.begin_acting(actors.Actor.token(request.auth))

    def dispatch(self, request, *args, **kwargs):
        try:
            return super().dispatch(request, *args, **kwargs)
        finally:
            # Also when the view raises past DRF's handler (a 500): never left set.
            reset = getattr(self, "_acting", None)
            if reset is not None:
                actors.end_acting(reset)
                self._acting = None

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
        queryset = self.filter_queryset(self.get_queryset())
        if not _can_hold(queryset.model, field, value):
            # "/alerts/AAA/" names nothing, like an id nobody has: 404, not a 500.
            raise Http404(f"No {queryset.model._meta.object_name} matches the given query.")
        queryset = queryset.filter(**{field: value})
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


# The widest integer every database here stores (PostgreSQL's bigint).
LARGEST_INTEGER = 2**63 - 1


def _can_hold(model: type[models.Model], field: str, value: str) -> bool:
    """Whether the lookup field could hold the value at all (an id is a number)."""
    model_field = model._meta.pk if field == "pk" else model._meta.get_field(field)
    try:
        prepared = model_field.to_python(value)
    except (DjangoValidationError, ValueError, TypeError):
        return False
    if isinstance(model_field, models.IntegerField):
        return isinstance(prepared, int) and abs(prepared) <= LARGEST_INTEGER
    return True
