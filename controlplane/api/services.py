from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers

from controlplane.api.schema import ORGANIZATION
from controlplane.api.scoping import OrganizationScopedViewSet
from controlplane.catalog.models import Service


class ServiceSerializer(serializers.ModelSerializer):
    organization = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    tier = serializers.IntegerField(read_only=True)

    class Meta:
        model = Service
        fields = ["slug", "name", "organization", "tier", "team", "description", "updated_at"]


@extend_schema_view(retrieve=extend_schema(parameters=[ORGANIZATION]))
class ServiceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrganizationScopedViewSet):
    """Services of the caller's organisation."""

    queryset = Service.objects.select_related("organization").order_by("organization_id", "slug")
    serializer_class = ServiceSerializer
    lookup_field = "slug"
