"""The delivery ledger, read-only: every notification of the caller's organisation.

Rows are written by paging's engine only (a notification is a row before it is a
request); the API shows them, newest first, filtered by alert, state or channel.
"""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import mixins, serializers
from rest_framework.exceptions import ValidationError

from controlplane.api.schema import ref
from controlplane.api.scoping import LARGEST_INTEGER, OrganizationScopedViewSet
from controlplane.paging.channels import ChannelKind
from controlplane.paging.models import Notification

# An alert's JSON lists this many of its notifications, the latest; the ledger's own
# endpoint pages through all of them.
LATEST_OF_AN_ALERT = 50

NEWEST_FIRST = ("-created_at", "-pk")


@extend_schema_field(ref("ChannelKind"))
class ChannelKindField(serializers.ChoiceField):
    def __init__(self, **kwargs) -> None:
        super().__init__(ChannelKind.choices, **kwargs)


@extend_schema_field(ref("NotificationState"))
class NotificationStateField(serializers.ChoiceField):
    def __init__(self, **kwargs) -> None:
        super().__init__(Notification.State.choices, **kwargs)


class NotificationSerializer(serializers.ModelSerializer):
    # The id only: the row stores it, so no alert is read to show it.
    alert = serializers.PrimaryKeyRelatedField(
        read_only=True, allow_null=True, help_text="The alert's id; null for a test notification."
    )
    # The ledger keeps the name a channel had when the row was written, also after the
    # channel is deleted.
    channel = serializers.CharField(source="channel_name", read_only=True)
    channel_kind = ChannelKindField(read_only=True)
    state = NotificationStateField(read_only=True)

    class Meta:
        model = Notification
        fields = [
            "id",
            "alert",
            "channel",
            "channel_kind",
            "event",
            "step",
            "loop",
            "reminder",
            "state",
            "attempts",
            "next_attempt_at",
            "last_status",
            "last_error",
            "sent_at",
            "trace_id",
            "is_test",
            "created_at",
        ]
        read_only_fields = fields


def latest_of_alerts() -> Prefetch:
    """Prefetch each alert's latest notifications into `latest_notifications`: one query
    for any number of alerts."""
    return Prefetch(
        "notifications",
        queryset=Notification.objects.order_by(*NEWEST_FIRST)[:LATEST_OF_AN_ALERT],
        to_attr="latest_notifications",
    )


FILTERS = [
    OpenApiParameter(
        "alert", OpenApiTypes.INT, description="Only the notifications of this alert."
    ),
    OpenApiParameter("state", OpenApiTypes.STR, enum=Notification.State.values),
    OpenApiParameter("channel", OpenApiTypes.STR, description="A channel's name."),
]


@extend_schema_view(list=extend_schema(parameters=FILTERS))
class NotificationViewSet(mixins.ListModelMixin, OrganizationScopedViewSet):
    """Notifications of the caller's organisation, newest first: what was sent where,
    how it went, and when it is tried again."""

    queryset = Notification.objects.order_by(*NEWEST_FIRST)
    serializer_class = NotificationSerializer

    def get_queryset(self) -> QuerySet:
        queryset = super().get_queryset()
        params = self.request.query_params
        errors: dict[str, list[str]] = {}
        alert = params.get("alert")
        if alert is not None:
            alert_id = _alert_id(alert)
            if alert_id is None:
                errors["alert"] = ["Must be an alert's id: a whole number, 1 or more."]
            else:
                queryset = queryset.filter(alert_id=alert_id)
        state = params.get("state")
        if state is not None:
            if state not in Notification.State.values:
                errors["state"] = [f"Choose one of {', '.join(Notification.State.values)}."]
            else:
                queryset = queryset.filter(state=state)
        channel = params.get("channel")
        if channel is not None:
            if not channel:
                errors["channel"] = ["Give a channel's name."]
            else:
                queryset = queryset.filter(channel_name=channel)
        if errors:
            raise ValidationError(errors)
        return queryset


def _alert_id(text: str) -> int | None:
    value = text.strip()
    # Past 19 digits no bigint is left, and int() of thousands of digits is refused.
    if not value.isascii() or not value.isdigit() or len(value) > 19:
        return None
    number = int(value)
    return number if 0 < number <= LARGEST_INTEGER else None
