"""How the OpenAPI schema describes the API: bearer tokens, strict bodies, error answers.

Every operation can answer 400, 401, 403 and 404 with a JSON `detail` sentence: the
NUL guard, authentication, the organisation walls and the pagination are shared by
all of them, so `document_errors` (a drf-spectacular post-processing hook) writes
those answers into every operation. Answers particular to an operation (a 409) are
declared on its view with `conflict()`.
"""

from __future__ import annotations

import inspect
from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiSerializerExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse

from controlplane.paging.channels import ChannelKind
from controlplane.paging.models import Notification


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "controlplane.api.authentication.BearerTokenAuthentication"
    name = "bearerToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An organisation's API token (cpt_…), read or write scope.",
        }


STRICT = "Fields not listed here are refused: the 400 answer names them."


class StrictBodyScheme(OpenApiSerializerExtension):
    """Serializers that refuse unknown fields (bodies.StrictBody) say so in the schema."""

    target_class = "controlplane.api.bodies.StrictBody"
    match_subclasses = True

    def map_serializer(self, auto_schema, direction) -> dict[str, Any]:
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        # Without a docstring of its own, the serializer would be described by the mixin's,
        # which is written for developers.
        own = type(self.target).__dict__.get("__doc__")
        schema["description"] = inspect.cleandoc(own) if own else STRICT
        return {**schema, "additionalProperties": False}


DETAIL = {"type": "string", "description": "What went wrong, in a sentence a person can act on."}

COMPONENTS: dict[str, dict[str, Any]] = {
    "Problem": {
        "type": "object",
        "properties": {"detail": DETAIL},
        "required": ["detail"],
    },
    "InvalidInput": {
        "type": "object",
        "properties": {
            "detail": DETAIL,
            "errors": {
                "type": "object",
                "additionalProperties": {},
                "description": "For refused fields: each field's name and why it was refused.",
            },
        },
        "required": ["detail"],
    },
    "SourceInUse": {
        "type": "object",
        "properties": {
            "detail": DETAIL,
            "rules": {
                "type": "array",
                "items": {"type": "string"},
                "description": "The keys of the rules that read the source.",
            },
        },
        "required": ["detail", "rules"],
    },
    # Named here rather than by drf-spectacular's enum hook, which names a choice set
    # after its field ("state", "kind") and collides with the alerts' and the sources'.
    "ChannelKind": {"type": "string", "enum": ChannelKind.values},
    "NotificationState": {"type": "string", "enum": Notification.State.values},
    "ChannelInUse": {
        "type": "object",
        "properties": {
            "detail": DETAIL,
            "policies": {
                "type": "array",
                "items": {"type": "string"},
                "description": "The slugs of the escalation policies whose steps name the channel.",
            },
        },
        "required": ["detail", "policies"],
    },
    "PolicyInUse": {
        "type": "object",
        "properties": {
            "detail": DETAIL,
            "rules": {
                "type": "array",
                "items": {"type": "string"},
                "description": "The keys of the rules that name the policy.",
            },
        },
        "required": ["detail", "rules"],
    },
}


def ref(component: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{component}"}


# Answers every operation may give.
ERRORS = {
    "400": (
        "InvalidInput",
        "Refused input: a field (named in `errors`), a query parameter, malformed JSON, "
        "or a NUL character anywhere in the request.",
    ),
    "401": ("Problem", "No credentials, or a token that is unknown or revoked."),
    "403": (
        "Problem",
        "Not allowed: a read-only token asked to write, or the caller's role in the "
        "organisation does not allow it.",
    ),
    "404": (
        "Problem",
        "Not found among the caller's organisations (another organisation's object "
        "answers the same), or a page past the last one.",
    ),
}


def conflict(description: str, component: str = "Problem") -> OpenApiResponse:
    """A 409 answer for `extend_schema(responses=...)`."""
    return OpenApiResponse(response=ref(component), description=description)


# Names are unique within an organisation only (scoping.OrganizationScopedViewSet.get_object,
# access.target_organization).
ORGANIZATION = OpenApiParameter(
    "organization",
    OpenApiTypes.STR,
    description="The slug of the organisation meant, for a member of several organisations "
    "whose organisations both have the name. A token belongs to one and need not say.",
)

SAVED_CONCURRENTLY = conflict(
    "Another change to the same object was saved at the same time; read it again and retry."
)


def document_errors(result: dict, generator, request, public: bool, **kwargs) -> dict:
    """Post-processing hook: the shared error answers in every operation."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    result["components"]["schemas"] = dict(sorted({**schemas, **COMPONENTS}.items()))
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for code, (component, description) in ERRORS.items():
                responses.setdefault(
                    code,
                    {
                        "content": {"application/json": {"schema": ref(component)}},
                        "description": description,
                    },
                )
            operation["responses"] = dict(sorted(responses.items()))
    return result
