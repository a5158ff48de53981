"""Alerts from Alertmanager: its webhook (payload version 4), two ways in.

- `POST /api/v1/integrations/alertmanager/<key>/`: the integration's key in the URL, so
  Alertmanager's `webhook_configs` needs no header. An unknown key answers 404.
- `POST /api/v1/integrations/alertmanager/` with a write token of the organisation
  (`Authorization: Bearer cpt_…`); `?integration=<slug>` names the integration, which
  may be left out when the organisation has only one.

The body is read as it came (not through a parser): paging.alertmanager checks it and
names the field it refuses, paging.intake carries it out. A refusal answers 400 (413
past the size limits) in the API's error format, and changes nothing.
"""

from __future__ import annotations

from django.core.exceptions import RequestDataTooBig
from django.http import Http404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, viewsets
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.permissions import AllowAny, BasePermission
from rest_framework.request import Request
from rest_framework.response import Response

from controlplane.api.authentication import BearerTokenAuthentication
from controlplane.api.parsers import JSONParser
from controlplane.api.schema import ref
from controlplane.catalog.actors import Actor
from controlplane.catalog.models import ApiToken
from controlplane.paging import alertmanager, intake
from controlplane.paging.alertmanager import PayloadError, TooLarge
from controlplane.paging.models import AlertmanagerIntegration
from observability import context

_LABELS = {"type": "object", "additionalProperties": {"type": "string"}}
_TIME = {"type": "string", "format": "date-time", "description": "RFC 3339."}

ALERT_SCHEMA = {
    "type": "object",
    "required": ["status", "labels", "startsAt", "fingerprint"],
    "properties": {
        "status": {"type": "string", "enum": list(alertmanager.STATUSES)},
        "labels": {
            **_LABELS,
            "description": "alertname names the alert; severity (critical, warning, info and "
            "their usual spellings) sets its severity; runbook may name a runbook.",
        },
        "annotations": {
            **_LABELS,
            "description": "summary (else description, else message) is what notifications "
            "say; runbook_url links a runbook: an absolute address, or a runbook's slug.",
        },
        "startsAt": _TIME,
        "endsAt": {**_TIME, "description": "0001-01-01T00:00:00Z while the alert fires."},
        "generatorURL": {"type": "string"},
        "fingerprint": {
            "type": "string",
            "pattern": alertmanager.FINGERPRINT.pattern,
            "description": "The alert's identity: Alertmanager writes 16 hexadecimal digits.",
        },
    },
    "additionalProperties": True,
}

PAYLOAD_SCHEMA = {
    "type": "object",
    "description": "Alertmanager's webhook payload, version 4. Unknown keys are accepted. "
    f"At most {alertmanager.MAX_BODY_BYTES} bytes and {alertmanager.MOST_ALERTS} alerts.",
    "required": ["version", "alerts"],
    "properties": {
        "version": {"type": "string", "enum": [alertmanager.VERSION]},
        "groupKey": {"type": "string"},
        "truncatedAlerts": {"type": "integer", "minimum": 0},
        "status": {"type": "string", "enum": list(alertmanager.STATUSES)},
        "receiver": {"type": "string"},
        "groupLabels": _LABELS,
        "commonLabels": _LABELS,
        "commonAnnotations": _LABELS,
        "externalURL": {"type": "string"},
        "alerts": {"type": "array", "maxItems": alertmanager.MOST_ALERTS, "items": ALERT_SCHEMA},
    },
    "additionalProperties": True,
}


class ReceiptSerializer(serializers.Serializer):
    """What the payload did."""

    integration = serializers.CharField(help_text="The integration's slug.")
    alerts = serializers.IntegerField(help_text="Alerts in the payload.")
    opened = serializers.IntegerField()
    updated = serializers.IntegerField(help_text="Open alerts whose labels or text changed.")
    resolved = serializers.IntegerField()
    unchanged = serializers.IntegerField(
        help_text="Alerts already as told (a payload sent twice changes nothing), resolved "
        "already, or never seen firing."
    )
    truncated_alerts = serializers.IntegerField(
        help_text="Alerts Alertmanager left out (its max_alerts): they never arrived."
    )


TOO_LARGE = OpenApiResponse(
    response=ref("InvalidInput"),
    description=f"The body is over {alertmanager.MAX_BODY_BYTES} bytes or lists more than "
    f"{alertmanager.MOST_ALERTS} alerts.",
)
REFUSED = (
    "A payload that is not JSON, not version 4, or malformed answers 400 naming the field "
    "(`alerts[2].fingerprint`) and changes nothing."
)


class _Intake(viewsets.ViewSet):
    # For the schema's media type only: the body is read as it came.
    parser_classes = [JSONParser]

    def _receive(self, request: Request, integration: AlertmanagerIntegration, actor: Actor):
        context.bind(organization_id=str(integration.organization_id))
        try:
            body = _body(request)
        except TooLarge as error:
            intake.refused(integration, error, timezone.now())
            return _refusal(error)
        try:
            receipt = intake.receive(integration, body, actor)
        except PayloadError as error:  # receive() noted it on the integration
            return _refusal(error)
        return Response(receipt.as_dict())


def _body(request: Request) -> bytes:
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > alertmanager.MAX_BODY_BYTES:
        raise TooLarge(
            "body",
            f"{declared} bytes; at most {alertmanager.MAX_BODY_BYTES} are read in one request.",
        )
    try:
        return request.body
    except RequestDataTooBig:
        raise TooLarge(
            "body", f"at most {alertmanager.MAX_BODY_BYTES} bytes are read in one request."
        ) from None


def _refusal(error: PayloadError) -> Response:
    return Response(
        {
            "detail": f"Invalid input. {error.field}: {error.message}",
            "errors": {error.field: [error.message]},
        },
        status=error.status,
    )


KEY = OpenApiParameter(
    "key",
    OpenApiTypes.STR,
    OpenApiParameter.PATH,
    description="The integration's key (amk_…), shown once when it was made or regenerated.",
)


class KeyIntake(_Intake):
    """The integration's key, in the URL, is the credential: no header needed."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="alertmanager_intake_with_key",
        summary="Alerts from Alertmanager, with the integration's key",
        description="Point a webhook_configs url here. An unknown key answers 404. " + REFUSED,
        request={"application/json": PAYLOAD_SCHEMA},
        parameters=[KEY],
        responses={200: ReceiptSerializer, 413: TOO_LARGE},
        auth=[],
    )
    def receive(self, request: Request, key: str) -> Response:
        integration = AlertmanagerIntegration.by_key(key)
        if integration is None:
            raise Http404("No Alertmanager integration has this key (regenerated, or deleted?).")
        return self._receive(request, integration, intake.actor_of(integration))


class WriteToken(BasePermission):
    """A write token: the organisation is the token's."""

    def has_permission(self, request: Request, view) -> bool:
        if not isinstance(request.auth, ApiToken):
            return False  # 401: this way in takes a bearer token
        if not request.auth.can_write:
            raise PermissionDenied(
                "This token is read-only: Alertmanager's payloads need a token with the write "
                "scope (or post to the integration's own URL, with its key)."
            )
        return True


INTEGRATION = OpenApiParameter(
    "integration",
    OpenApiTypes.STR,
    description="The slug of the integration; may be left out when the token's organisation "
    "has only one.",
)


class TokenIntake(_Intake):
    """A write token of the organisation; `?integration=<slug>` names the integration."""

    authentication_classes = [BearerTokenAuthentication]
    permission_classes = [WriteToken]

    @extend_schema(
        operation_id="alertmanager_intake_with_token",
        summary="Alerts from Alertmanager, with a write token",
        description="For an Alertmanager that sends an Authorization header "
        "(webhook_configs' http_config). " + REFUSED,
        request={"application/json": PAYLOAD_SCHEMA},
        parameters=[INTEGRATION],
        responses={200: ReceiptSerializer, 413: TOO_LARGE},
    )
    def receive(self, request: Request) -> Response:
        token: ApiToken = request.auth
        integration = _chosen(token, request.query_params.get("integration"))
        return self._receive(request, integration, Actor.token(token))


def _chosen(token: ApiToken, slug: str | None) -> AlertmanagerIntegration:
    integrations = AlertmanagerIntegration.objects.select_related("organization", "service").filter(
        organization_id=token.organization_id
    )
    if slug:
        found = integrations.filter(slug=slug).first()
        if found is None:
            raise Http404(f"Your organisation has no Alertmanager integration {slug[:64]!r}.")
        return found
    candidates = list(integrations[:2])
    if not candidates:
        raise Http404(
            "Your organisation has no Alertmanager integration: add one in the admin first."
        )
    if len(candidates) > 1:
        raise ValidationError(
            {"integration": ["Name the integration with ?integration=<slug>: there are several."]}
        )
    return candidates[0]
