"""Metric sources (Prometheus endpoints) of the caller's organisation, by name.

The auth header is write-only: once stored it is never returned, not even masked.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import ProtectedError
from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_view
from rest_framework import mixins, serializers
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from controlplane.api.access import target_organization
from controlplane.api.bodies import StrictBody
from controlplane.api.errors import save_or_conflict
from controlplane.api.fields import HttpUrlField
from controlplane.api.schema import ORGANIZATION, SAVED_CONCURRENTLY, conflict
from controlplane.api.scoping import OrganizationScopedViewSet
from controlplane.catalog.models import MetricSource, Organization, SourceHealth
from controlplane.catalog.validators import validate_http_url


def _when(at) -> str | None:
    return serializers.DateTimeField().to_representation(at) if at else None


# A moment of the source's health; null until it happens.
WHEN = {"type": "string", "format": "date-time", "nullable": True}


class SourceSerializer(StrictBody, serializers.ModelSerializer):
    auth_header = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        max_length=1000,
        help_text="Sent as the Authorization header. Write-only; an empty string removes it.",
    )
    url = HttpUrlField(
        max_length=500,
        label="Base URL",
        help_text="e.g. http://prometheus:9090",
        validators=[validate_http_url],
    )
    has_auth_header = serializers.SerializerMethodField()
    # Health is the evaluator's (catalog.SourceHealth): read here, never written.
    failing_since = serializers.SerializerMethodField()
    last_error = serializers.SerializerMethodField()
    last_success_at = serializers.SerializerMethodField()

    class Meta:
        model = MetricSource
        fields = [
            "name",
            "kind",
            "url",
            "timeout",
            "auth_header",
            "has_auth_header",
            "failing_since",
            "last_error",
            "last_success_at",
            "created_at",
        ]
        read_only_fields = ["kind", "created_at"]

    def get_has_auth_header(self, source: MetricSource) -> bool:
        return bool(source.auth_header)

    def _health(self, source: MetricSource) -> SourceHealth | None:
        try:
            return source.health
        except SourceHealth.DoesNotExist:  # never queried yet
            return None

    @extend_schema_field(WHEN)
    def get_failing_since(self, source: MetricSource) -> str | None:
        health = self._health(source)
        return _when(health.failing_since if health else None)

    def get_last_error(self, source: MetricSource) -> str:
        health = self._health(source)
        return health.last_error if health else ""

    @extend_schema_field(WHEN)
    def get_last_success_at(self, source: MetricSource) -> str | None:
        health = self._health(source)
        return _when(health.last_success_at if health else None)

    def validate(self, attrs: dict) -> dict:
        if self.instance is None:
            organization: Organization = self.context["organization"]
            source = MetricSource(organization=organization)
        else:
            source = MetricSource.objects.get(pk=self.instance.pk)
        for field, value in attrs.items():
            setattr(source, field, value)
        # Named in this request: it may go wherever the URL now points.
        source.auth_header_given = "auth_header" in attrs
        self._check_name_is_free(source)
        try:
            source.full_clean(exclude=["organization"])
        except DjangoValidationError as error:
            raise ValidationError(error.message_dict) from None
        return {"source": source}

    def _check_name_is_free(self, source: MetricSource) -> None:
        taken = MetricSource.objects.filter(
            organization_id=source.organization_id, name=source.name
        ).exclude(pk=source.pk)
        if taken.exists():
            raise ValidationError({"name": [f"A source named {source.name!r} already exists."]})

    def _save(self, source: MetricSource) -> MetricSource:
        return save_or_conflict(source, self._check_name_is_free, f"The source {source.name!r}")

    def create(self, validated_data: dict) -> MetricSource:
        return self._save(validated_data["source"])

    def update(self, instance: MetricSource, validated_data: dict) -> MetricSource:
        return self._save(validated_data["source"])


@extend_schema_view(
    create=extend_schema(
        parameters=[ORGANIZATION], responses={201: SourceSerializer, 409: SAVED_CONCURRENTLY}
    ),
    retrieve=extend_schema(parameters=[ORGANIZATION]),
    partial_update=extend_schema(
        parameters=[ORGANIZATION], responses={200: SourceSerializer, 409: SAVED_CONCURRENTLY}
    ),
    destroy=extend_schema(
        parameters=[ORGANIZATION],
        responses={
            204: None,
            409: conflict("Rules still read the source: `rules` names them.", "SourceInUse"),
        },
    ),
)
class SourceViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    OrganizationScopedViewSet,
):
    """Prometheus endpoints rules query. Writes need a write token."""

    queryset = MetricSource.objects.select_related("health").order_by("organization_id", "name")
    serializer_class = SourceSerializer
    lookup_field = "name"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_serializer_context(self) -> dict:
        extra = super().get_serializer_context()
        if self.action == "create":
            extra["organization"] = target_organization(self.request)
        return extra

    def destroy(self, request, *args, **kwargs) -> Response:
        source = self.get_object()
        try:
            source.delete()
        except ProtectedError:
            keys = sorted(source.rules.values_list("key", flat=True))
            return Response(
                {
                    "detail": f"The source {source.name!r} is used by {len(keys)} rule(s): "
                    f"{', '.join(keys)}. Point them at another source or delete them first.",
                    "rules": keys,
                },
                status=409,
            )
        return Response(status=204)
