"""Alerts: read them, acknowledge and resolve them.

Acknowledging and resolving need a write token, or a session of a responder or a
manager of the alert's organisation: the people on call are not all managers.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import mixins, serializers
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response

from controlplane.alerting import lifecycle
from controlplane.alerting.models import Alert, AlertEvent, Severity
from controlplane.api.bodies import StrictBody
from controlplane.api.fields import SampleValueField
from controlplane.api.notifications import (
    LATEST_OF_AN_ALERT,
    NEWEST_FIRST,
    NotificationSerializer,
    latest_of_alerts,
)
from controlplane.api.schema import ORGANIZATION, conflict
from controlplane.api.scoping import OrganizationScopedViewSet
from controlplane.catalog import tenancy
from controlplane.catalog.actors import Actor
from controlplane.catalog.models import ApiToken


class AlertEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AlertEvent
        fields = ["at", "kind", "actor", "trace_id", "note"]


class AlertSerializer(serializers.ModelSerializer):
    rule = serializers.CharField(source="rule_key", help_text="The rule's key.")
    service = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    value = SampleValueField(read_only=True)
    silenced = serializers.SerializerMethodField()
    trace_url = serializers.SerializerMethodField(help_text="The trace viewer, when configured.")
    url = serializers.SerializerMethodField(help_text="The alert's page.")
    runbook_url = serializers.SerializerMethodField(
        help_text="Its rule's runbook page, or the runbook an Alertmanager alert named; "
        "empty when there is none."
    )
    source = serializers.SerializerMethodField(
        help_text='Where it came from: "rule", or "alertmanager:<integration slug>".'
    )

    class Meta:
        model = Alert
        fields = [
            "id",
            "rule",
            "service",
            "state",
            "severity",
            "value",
            "labels",
            "annotations",
            "started_at",
            "acknowledged_at",
            "resolved_at",
            "trace_id",
            "span_id",
            "trace_url",
            "url",
            "runbook_url",
            "source",
            "is_test",
            "silenced",
        ]
        read_only_fields = fields

    def get_silenced(self, alert: Alert) -> bool:
        return alert.silenced_by_id is not None

    def get_trace_url(self, alert: Alert) -> str:
        return alert.trace_url()

    def get_url(self, alert: Alert) -> str:
        return self.context["request"].build_absolute_uri(alert.get_absolute_url())

    def get_runbook_url(self, alert: Alert) -> str:
        runbook = alert.rule.runbook if alert.rule is not None else None
        if runbook is not None:
            return self.context["request"].build_absolute_uri(runbook.get_absolute_url())
        return alert.runbook_url

    def get_source(self, alert: Alert) -> str:
        if alert.alertmanager is not None:
            return f"alertmanager:{alert.alertmanager.slug}"
        return "rule"


class AlertDetailSerializer(AlertSerializer):
    timeline = AlertEventSerializer(source="events", many=True, read_only=True)
    notifications = serializers.SerializerMethodField(
        help_text=f"The alert's latest {LATEST_OF_AN_ALERT} notifications, newest first; "
        "GET /api/v1/notifications/?alert=<id> lists them all."
    )

    class Meta(AlertSerializer.Meta):
        fields = [*AlertSerializer.Meta.fields, "timeline", "notifications"]
        read_only_fields = fields

    @extend_schema_field(NotificationSerializer(many=True))
    def get_notifications(self, alert: Alert) -> list[dict]:
        rows = getattr(alert, "latest_notifications", None)
        if rows is None:  # not prefetched (AlertViewSet's queryset does prefetch)
            rows = alert.notifications.order_by(*NEWEST_FIRST)[:LATEST_OF_AN_ALERT]
        return NotificationSerializer(rows, many=True, context=self.context).data


class NoteSerializer(StrictBody, serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, max_length=1000)


class MayRespond(BasePermission):
    """Write tokens, and responders or managers of the alert's organisation."""

    def has_permission(self, request: Request, view) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False
        if isinstance(request.auth, ApiToken) and not request.auth.can_write:
            raise PermissionDenied(
                "This token is read-only: writes need a token with the write scope."
            )
        return True

    def has_object_permission(self, request: Request, view, alert: Alert) -> bool:
        if isinstance(request.auth, ApiToken):
            return request.auth.organization_id == alert.organization_id
        if not tenancy.has_role(request.user, alert.organization_id, tenancy.RESPOND_ROLES):
            raise PermissionDenied("Only responders and managers of its organisation may do this.")
        return True


FILTERS = [
    OpenApiParameter("state", OpenApiTypes.STR, enum=Alert.State.values),
    OpenApiParameter("severity", OpenApiTypes.STR, enum=Severity.values),
    OpenApiParameter("service", OpenApiTypes.STR, description="A service slug."),
    OpenApiParameter("rule", OpenApiTypes.STR, description="A rule key, e.g. api.5xx."),
]


@extend_schema_view(
    list=extend_schema(parameters=FILTERS), retrieve=extend_schema(parameters=[ORGANIZATION])
)
class AlertViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrganizationScopedViewSet):
    """Alerts of the caller's organisation, newest first."""

    queryset = Alert.objects.select_related("service", "rule__runbook", "alertmanager").order_by(
        "-started_at", "-pk"
    )
    serializer_class = AlertSerializer

    def get_serializer_class(self):
        if self.action == "list":
            return AlertSerializer
        return AlertDetailSerializer

    def get_permissions(self):
        if self.action in ("acknowledge", "resolve"):
            return [MayRespond()]
        return super().get_permissions()

    def get_queryset(self):
        queryset = super().get_queryset()
        if self.action != "list":
            return queryset.prefetch_related("events", latest_of_alerts())
        params = self.request.query_params
        choices = {"state": Alert.State.values, "severity": Severity.values}
        for name, allowed in choices.items():
            value = params.get(name)
            if value is None:
                continue
            if value not in allowed:
                raise ValidationError({name: [f"Choose one of {', '.join(allowed)}."]})
            queryset = queryset.filter(**{name: value})
        if params.get("service"):
            queryset = queryset.filter(service__slug=params["service"])
        if params.get("rule"):
            queryset = queryset.filter(rule_key=params["rule"])
        return queryset

    def _actor(self, request: Request) -> Actor:
        """A token acts under its own name, with no user row."""
        if isinstance(request.auth, ApiToken):
            return Actor.token(request.auth)
        return Actor.user(request.user)

    @extend_schema(
        request=NoteSerializer,
        parameters=[ORGANIZATION],
        responses={200: AlertDetailSerializer, 409: conflict("The alert is not firing.")},
    )
    @action(detail=True, methods=["post"])
    def acknowledge(self, request: Request, pk=None) -> Response:
        """Acknowledge a firing alert; 409 when it is not firing."""
        alert = self.get_object()
        note = self._note(request)
        if not lifecycle.acknowledge(alert, self._actor(request), note=note):
            return Response(
                {"detail": f"Only a firing alert can be acknowledged; this one is {alert.state}."},
                status=409,
            )
        return self._answer(alert)

    @extend_schema(
        request=NoteSerializer,
        parameters=[ORGANIZATION],
        responses={200: AlertDetailSerializer, 409: conflict("The alert is already resolved.")},
    )
    @action(detail=True, methods=["post"])
    def resolve(self, request: Request, pk=None) -> Response:
        """Resolve an open alert; 409 when it is already resolved."""
        alert = self.get_object()
        actor = self._actor(request)
        if not lifecycle.resolve(
            alert, actor=actor, note=self._note(request) or "resolved by hand"
        ):
            return Response({"detail": "The alert is already resolved."}, status=409)
        return self._answer(alert)

    def _note(self, request: Request) -> str:
        serializer = NoteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data.get("note", "")

    def _answer(self, alert: Alert) -> Response:
        fresh = self.get_queryset().get(pk=alert.pk)
        return Response(AlertDetailSerializer(fresh, context=self.get_serializer_context()).data)
