"""Bearer tokens: one organisation, read or write, stored hashed."""

from __future__ import annotations

from dataclasses import dataclass

from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from controlplane.catalog.actors import Actor
from controlplane.catalog.models import ApiToken
from observability import context


@dataclass(frozen=True)
class TokenPrincipal:
    """The 'user' of a token-authenticated request: the token itself."""

    token: ApiToken
    is_authenticated: bool = True
    is_active: bool = True
    is_superuser: bool = False
    is_staff: bool = False

    @property
    def pk(self) -> str:
        return Actor.token(self.token).spec

    id = pk

    def __str__(self) -> str:
        return self.pk


class BearerTokenAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[TokenPrincipal, ApiToken] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != b"bearer":
            return None
        if len(parts) != 2:
            raise AuthenticationFailed("Malformed Authorization header: expected 'Bearer <token>'.")
        try:
            plaintext = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise AuthenticationFailed("Invalid or revoked token.") from None
        token = ApiToken.authenticate(plaintext)
        if token is None:
            raise AuthenticationFailed("Invalid or revoked token.")
        principal = TokenPrincipal(token)
        context.bind(user_id=principal.pk, organization_id=str(token.organization_id))
        return principal, token

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'
