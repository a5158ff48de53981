"""Who acts in a request, named once at the edge for every recorder behind it.

A silence saved in the admin silences alerts, a rule disabled through the API resolves
them: those changes reach the alerting recorder through the models' signals, which
cannot be handed the actor. The request's user is named here for the whole request;
the API names its token once DRF has authenticated it (`api.scoping`).
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from controlplane.catalog.actors import Actor, acting


class ActingMiddleware:
    """After AuthenticationMiddleware: a signed-in user acts in their own name."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # Asked for only when a recorder needs it: reading request.user here would load
        # the session (and mark the response Vary: Cookie) on every request.
        with acting(lambda: _signed_in(request)):
            return self.get_response(request)


def _signed_in(request: HttpRequest) -> Actor | None:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    return Actor.user(user)
