"""Notification channels of the caller's organisation, by name.

A channel is `{"name", "kind", "config"}`, `config` being the kind's object
(controlplane/paging/channels.py). It is checked exactly as the admin checks it: the
kind's parser, then the model's clean() (a URL naming a private address is refused).
Secrets are write-only: every answer shows `config` masked, and a PATCH that leaves a
secret out, or sends it back as shown, keeps the stored one. Changing the kind is not
an update: the new kind's configuration is given whole.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.http import Http404
from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_view
from rest_framework import mixins, serializers
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from controlplane.api.access import target_organization
from controlplane.api.bodies import StrictBody
from controlplane.api.errors import save_or_conflict
from controlplane.api.notifications import ChannelKindField, NotificationSerializer
from controlplane.api.schema import ORGANIZATION, SAVED_CONCURRENTLY, conflict
from controlplane.api.scoping import OrganizationScopedViewSet
from controlplane.catalog.models import Organization
from controlplane.catalog.validators import contains_surrogate
from controlplane.paging import channels, engine
from controlplane.paging.channels import ChannelConfigError
from controlplane.paging.models import (
    ChannelHealth,
    EscalationPolicy,
    Notification,
    NotificationChannel,
)
from observability import tracing

CONFIG_SHAPES = (
    'email: {"to": ["oncall@example.com"]}; '
    'slack: {"url": "https://hooks.slack.com/services/..."}; '
    'pagerduty: {"routing_key": "<32 letters and digits>", "url": "<optional endpoint>"}; '
    'webhook: {"url": "https://...", "secret": "<optional>", "headers": {"X-Team": "ops"}}. '
    "Answers show secrets masked; send a masked value back, or leave it out, to keep it."
)

# A moment of the channel's delivery history; null until it happens.
WHEN = {"type": "string", "format": "date-time", "nullable": True}


@extend_schema_field({"type": "object", "additionalProperties": {}, "description": CONFIG_SHAPES})
class ConfigField(serializers.Field):
    """The kind's configuration: read by paging.channels, which names what it refuses."""

    def to_internal_value(self, data: object) -> object:
        # JSON may spell a lone surrogate (\ud800), which no database stores as text:
        # refused here, naming the part of the configuration that holds it.
        if isinstance(data, dict):
            found = {
                str(name)[:50]: [_SURROGATE_MESSAGE]
                for name, value in data.items()
                if contains_surrogate(name) or contains_surrogate(value)
            }
            if found:
                raise ValidationError(found)
        elif contains_surrogate(data):
            raise ValidationError([_SURROGATE_MESSAGE])
        return data

    def get_attribute(self, instance: NotificationChannel) -> NotificationChannel:
        # The stored JSON holds the secrets: what is shown is made from the channel.
        return instance

    def to_representation(self, channel: NotificationChannel) -> dict[str, object]:
        return channel.masked_config()


class ChannelSerializer(StrictBody, serializers.Serializer):
    """A notification channel. Fields not listed here are refused: the 400 answer names
    them; a refused part of `config` is named `config.<field>`."""

    name = serializers.SlugField(max_length=64, help_text="Unique in the organisation.")
    kind = ChannelKindField()
    config = ConfigField()
    # Health is the delivery worker's (paging.ChannelHealth): read here, never written.
    failing = serializers.SerializerMethodField(
        help_text=f"The last {ChannelHealth.FAILING_AFTER} deliveries or more failed."
    )
    consecutive_failures = serializers.SerializerMethodField()
    last_error = serializers.SerializerMethodField()
    last_success_at = serializers.SerializerMethodField()
    last_failure_at = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)

    def _health(self, channel: NotificationChannel) -> ChannelHealth | None:
        try:
            return channel.health
        except ChannelHealth.DoesNotExist:  # nothing delivered yet
            return None

    def get_failing(self, channel: NotificationChannel) -> bool:
        health = self._health(channel)
        return health is not None and health.failing

    def get_consecutive_failures(self, channel: NotificationChannel) -> int:
        health = self._health(channel)
        return health.consecutive_failures if health else 0

    def get_last_error(self, channel: NotificationChannel) -> str:
        health = self._health(channel)
        return health.last_error if health else ""

    @extend_schema_field(WHEN)
    def get_last_success_at(self, channel: NotificationChannel) -> str | None:
        health = self._health(channel)
        return _when(health.last_success_at if health else None)

    @extend_schema_field(WHEN)
    def get_last_failure_at(self, channel: NotificationChannel) -> str | None:
        health = self._health(channel)
        return _when(health.last_failure_at if health else None)

    def validate(self, attrs: dict) -> dict:
        if self.instance is None:
            organization: Organization = self.context["organization"]
            channel = NotificationChannel(organization=organization)
            stored = None
        else:
            # A fresh copy: the instance answers the request if this one is refused.
            channel = NotificationChannel.objects.get(pk=self.instance.pk)
            stored = (channel.kind, channel.config)
        channel.name = attrs.get("name", channel.name)
        channel.kind = attrs.get("kind", channel.kind)
        config = self._config(stored, channel.kind, attrs)
        if config is not None:
            channel.config = channels.to_json(config)
        self._check_name_is_free(channel)
        try:
            channel.full_clean(exclude=["organization"])
        except DjangoValidationError as error:
            raise ValidationError(_api_errors(error)) from None
        return {"channel": channel}

    def _config(
        self, stored: tuple[str, dict] | None, kind: str, attrs: dict
    ) -> channels.ChannelConfig | None:
        """The configuration to store, or None to keep the stored one (`stored`: the
        kind and configuration saved before this request, None for a new channel)."""
        hosts = settings.SLACK_WEBHOOK_HOSTS
        stored_kind = stored[0] if stored is not None else None
        if "config" not in attrs:
            if stored_kind is not None and stored_kind != kind:
                raise ValidationError(
                    {
                        "config": [
                            f"Changing the kind from {stored_kind} to {kind} needs the whole "
                            f"configuration of a {kind} channel: {_shape_of(kind)}"
                        ]
                    }
                )
            return None
        raw = attrs["config"]
        try:
            if stored is not None and stored_kind == kind:
                try:
                    current = channels.from_json(*stored)
                except ChannelConfigError:
                    # What is stored no longer reads: nothing to keep, take the whole.
                    return channels.parse_config(kind, raw, slack_hosts=hosts)
                return channels.merge_update(current, raw, slack_hosts=hosts)
            return channels.parse_config(kind, raw, slack_hosts=hosts)
        except ChannelConfigError as error:
            raise ValidationError({"config": error.errors}) from None

    def _check_name_is_free(self, channel: NotificationChannel) -> None:
        taken = NotificationChannel.objects.filter(
            organization_id=channel.organization_id, name=channel.name
        ).exclude(pk=channel.pk)
        if taken.exists():
            raise ValidationError({"name": [f"A channel named {channel.name!r} already exists."]})

    def _save(self, channel: NotificationChannel) -> NotificationChannel:
        return save_or_conflict(channel, self._check_name_is_free, f"The channel {channel.name!r}")

    def create(self, validated_data: dict) -> NotificationChannel:
        return self._save(validated_data["channel"])

    def update(self, instance: NotificationChannel, validated_data: dict) -> NotificationChannel:
        return self._save(validated_data["channel"])


_SURROGATE_MESSAGE = "Text cannot contain surrogate characters (U+D800 to U+DFFF)."


def _when(at) -> str | None:
    return serializers.DateTimeField().to_representation(at) if at else None


def _shape_of(kind: str) -> str:
    return next(part for part in CONFIG_SHAPES.split("; ") if part.startswith(f"{kind}:"))


def _api_errors(error: DjangoValidationError) -> dict[str, object]:
    """The model's errors as the API names them: the model says "config.url: ..." in
    one message, the API nests it as {"config": {"url": [...]}} like the parser's."""
    if not hasattr(error, "error_dict"):
        return {"non_field_errors": error.messages}
    found: dict[str, object] = {}
    for field, messages in error.message_dict.items():
        if field == "config":
            nested: dict[str, list[str]] = {}
            for message in messages:
                where, _, text = message.partition(": ")
                name = where.removeprefix("config.") if where.startswith("config.") else ""
                if not text or not name:
                    name, text = channels.NON_FIELD_ERRORS, message
                nested.setdefault(name, []).append(text)
            found["config"] = nested
        else:
            found["non_field_errors" if field == "__all__" else field] = messages
    return found


class TestBody(StrictBody, serializers.Serializer):
    """No fields: send an empty object, or no body."""


@extend_schema_view(
    create=extend_schema(
        parameters=[ORGANIZATION], responses={201: ChannelSerializer, 409: SAVED_CONCURRENTLY}
    ),
    retrieve=extend_schema(parameters=[ORGANIZATION]),
    partial_update=extend_schema(
        parameters=[ORGANIZATION], responses={200: ChannelSerializer, 409: SAVED_CONCURRENTLY}
    ),
    destroy=extend_schema(
        parameters=[ORGANIZATION],
        responses={
            204: None,
            409: conflict(
                "Escalation policies still notify the channel: `policies` names them.",
                "ChannelInUse",
            ),
        },
    ),
)
class ChannelViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    OrganizationScopedViewSet,
):
    """Where notifications go: email, Slack, PagerDuty, webhooks. Writes need a write
    token or a manager's session."""

    queryset = NotificationChannel.objects.select_related("health").order_by(
        "organization_id", "name"
    )
    serializer_class = ChannelSerializer
    lookup_field = "name"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_serializer_context(self) -> dict:
        extra = super().get_serializer_context()
        if self.action == "create":
            extra["organization"] = target_organization(self.request)
        return extra

    def destroy(self, request: Request, *args, **kwargs) -> Response:
        channel = self.get_object()
        with transaction.atomic():
            # Policy writes lock the channels their steps name (api/policies.py): with
            # the row locked here, no step can come to name it between the check and
            # the delete. The M2M does not protect it: its rows would just go.
            if not NotificationChannel.objects.select_for_update().filter(pk=channel.pk).exists():
                raise Http404("No NotificationChannel matches the given query.")
            slugs = sorted(
                EscalationPolicy.objects.filter(steps__channels=channel)
                .values_list("slug", flat=True)
                .distinct()
            )
            if slugs:
                return Response(
                    {
                        "detail": f"The channel {channel.name!r} is notified by {len(slugs)} "
                        f"escalation polic{'y' if len(slugs) == 1 else 'ies'}: "
                        f"{', '.join(slugs)}. Take it out of their steps first.",
                        "policies": slugs,
                    },
                    status=409,
                )
            # The ledger keeps its rows of the channel (their channel becomes null; its
            # name and kind stay on each row).
            channel.delete()
        return Response(status=204)

    @extend_schema(
        request=TestBody,
        parameters=[ORGANIZATION],
        responses={202: NotificationSerializer},
    )
    @action(detail=True, methods=["post"], url_path="test")
    def send_test(self, request: Request, name: str | None = None) -> Response:
        """Queue a test notification to the channel; the answer is its ledger row, and
        GET /api/v1/notifications/?channel=<name> shows how its delivery went."""
        channel = self.get_object()
        TestBody(data=request.data).is_valid(raise_exception=True)
        with transaction.atomic():
            # Locked so that this request's row is the newest test row of the channel.
            NotificationChannel.objects.select_for_update().filter(pk=channel.pk).exists()
            engine.send_test([channel])
            row = (
                Notification.objects.filter(
                    channel=channel, event="test", trace_id=tracing.current_trace_id() or ""
                )
                .order_by("-pk")
                .first()
            )
        return Response(NotificationSerializer(row).data, status=202)
