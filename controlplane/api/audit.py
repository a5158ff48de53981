"""The audit trail, read-only: `GET /api/v1/audit/` and `GET /api/v1/audit/<id>/`.

Who reads it: API tokens of the organisation, read scope included (a token is issued by
a manager, for a machine that may well be the one exporting the trail), and signed-in
managers, as in the admin (controlplane/audit/reading.py). Responders and viewers do not:
the trail says who changed what, people's edits included.

People appear as their pseudonym ("user:p_3f9a…"), as the trail stores them; the admin
shows usernames beside them. Nothing here writes: PUT, PATCH, DELETE and POST answer 405
and the attempt is itself recorded. A page costs the same queries whatever its size: an
event is one row, with nothing to read beside it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import mixins, serializers
from rest_framework.exceptions import MethodNotAllowed, PermissionDenied, ValidationError
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request
from rest_framework.response import Response

from controlplane.api.fields import query_time
from controlplane.api.scoping import OrganizationScopedViewSet
from controlplane.audit import reading
from controlplane.audit.models import AuditEvent
from controlplane.catalog.actors import KINDS
from controlplane.catalog.models import ApiToken

# What an attempt to write would have done to the trail, by method.
ATTEMPTS = {"POST": "added", "PUT": "changed", "PATCH": "changed", "DELETE": "deleted"}
APPEND_ONLY = "The audit trail is append-only: its events cannot be added, changed or deleted."
NEWEST_FIRST = ("-at", "-id")


def trail_organizations_of(request: Request) -> set[int] | None:
    """The organisations whose trail the caller reads: a token its own; a session the
    ones its user manages (None: all, a superuser)."""
    if isinstance(request.auth, ApiToken):
        return {request.auth.organization_id}
    return reading.trail_organizations(request.user)


class TrailAccess(BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False
        if request.method not in SAFE_METHODS:
            return True  # the view answers 405, and records the attempt
        allowed = trail_organizations_of(request)
        if allowed is not None and not allowed:
            raise PermissionDenied(
                "The audit trail is read by the managers of an organisation and its API tokens."
            )
        return True


# --- the filters -----------------------------------------------------------------------


def lookups(params: Mapping[str, str]) -> dict[str, Any]:
    """The query's filters as queryset lookups; a ValidationError names each refused one.

    An action, type, id or actor that nothing has is no error: it matches no event.
    """
    found: dict[str, Any] = {}
    for name in ("action", "object_type", "object_id"):
        if params.get(name):
            found[name] = params[name]
    actor = params.get("actor")
    if actor:
        if actor in KINDS:
            found["actor__startswith"] = f"{actor}:"
        else:
            found["actor"] = actor
    errors: dict[str, list[str]] = {}
    span: dict[str, datetime] = {}
    for name in ("since", "until"):
        if params.get(name):
            try:
                span[name] = query_time(params[name], name)
            except ValidationError as error:
                errors.update(error.detail)
    if not errors and "since" in span and "until" in span and span["since"] > span["until"]:
        errors["since"] = ["`since` is after `until`."]
    if errors:
        raise ValidationError(errors)
    if "since" in span:
        found["at__gte"] = span["since"]
    if "until" in span:
        found["at__lte"] = span["until"]
    return found


FILTERS = [
    OpenApiParameter(
        "action",
        OpenApiTypes.STR,
        description="created, updated, deleted, token.created, token.revoked, audit.refused, "
        "retention.purged, …",
    ),
    OpenApiParameter(
        "object_type",
        OpenApiTypes.STR,
        description="The object's model as app.model, e.g. alerting.alertrule.",
    ),
    OpenApiParameter("object_id", OpenApiTypes.STR, description="The object's id."),
    OpenApiParameter(
        "actor",
        OpenApiTypes.STR,
        description="Who, as stored: user:<pseudonym>, token:<id>, system:<task> or "
        "link:<notification>.<channel>; or a kind alone: " + ", ".join(KINDS) + ".",
    ),
    OpenApiParameter(
        "since",
        OpenApiTypes.STR,
        description="Events at or after: ISO 8601 with offset (2026-03-29T01:30:00Z) or "
        "unix seconds.",
    ),
    OpenApiParameter("until", OpenApiTypes.STR, description="Events at or before; likewise."),
]


# --- the answer --------------------------------------------------------------------------

DIFF = {
    "type": "object",
    "additionalProperties": True,
    "description": 'What changed, by field: {"from": …, "to": …} (a creation has only "to", '
    'a deletion only "from"); a secret or personal value only {"secret": true, "changed": '
    'true} (never the value); long text {"summary": "1,204 characters", "sha256": …}; a '
    'list of related ids {"added": […], "removed": […]}. Other actions say what they did '
    "in their own words (a retention receipt its range).",
}


@extend_schema_field(DIFF)
class DiffField(serializers.JSONField):
    pass


class AuditEventSerializer(serializers.ModelSerializer):
    diff = DiffField(read_only=True)
    actor = serializers.CharField(
        read_only=True,
        help_text="user:<pseudonym> (a person, never by name), token:<id>, system:<task>, "
        "link:<notification>.<channel> (a one-click link).",
    )
    seq = serializers.IntegerField(
        read_only=True,
        allow_null=True,
        help_text="The event's place in its organisation's chain; null until sealed, "
        "right after the change commits.",
    )
    prev_hash = serializers.CharField(
        read_only=True, help_text="The hash of the event before it in the chain."
    )
    hash = serializers.CharField(read_only=True, help_text="Empty until sealed.")

    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "at",
            "actor",
            "action",
            "object_type",
            "object_id",
            "object_label",
            "diff",
            "request_id",
            "trace_id",
            "seq",
            "prev_hash",
            "hash",
        ]
        read_only_fields = fields


@extend_schema_view(list=extend_schema(parameters=FILTERS))
class AuditEventViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, OrganizationScopedViewSet
):
    """The audit trail of the caller's organisation, newest first: who changed what,
    when, in which request and trace. For the organisation's API tokens (read scope
    is enough) and its managers."""

    queryset = AuditEvent.objects.order_by(*NEWEST_FIRST)
    serializer_class = AuditEventSerializer
    permission_classes = [TrailAccess]

    def get_queryset(self) -> QuerySet:
        queryset = reading.scoped(self.queryset.all(), trail_organizations_of(self.request))
        if self.action == "list":
            queryset = queryset.filter(**lookups(self.request.query_params))
        return queryset

    def http_method_not_allowed(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        attempt = ATTEMPTS.get(request.method or "")
        if attempt:
            reading.record_attempt(attempt, kwargs.get("pk"), _readable_by(request))
        raise MethodNotAllowed(request.method, detail=APPEND_ONLY)


def _readable_by(request: Request) -> Callable[[int | None], bool]:
    """Whose trail the caller may read: a token its organisation's, a person as the
    admin's walls say."""
    token = request.auth if isinstance(request.auth, ApiToken) else None
    if token is not None:
        return lambda organization_id: organization_id == token.organization_id
    return lambda organization_id: reading.may_read(request.user, organization_id)
