"""The answer to a login refused by django-axes (settings: AXES_*, docs/security.md)."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

TEMPLATE = "registration/locked_out.html"


def cooloff_minutes(cooloff) -> int:
    """Whole minutes, rounded up: "try again in 0 minutes" would be a lie."""
    return max(1, -(-int(cooloff.total_seconds()) // 60))


def locked_out(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials=None
) -> HttpResponse:
    """429 with Retry-After, for /accounts/login/ and the admin's login alike.

    The page neither repeats the username nor says whether the account exists:
    the lock is on the pair of username and address, whichever it is.
    """
    minutes = cooloff_minutes(settings.AXES_COOLOFF_TIME)
    response = render(
        request,
        TEMPLATE,
        {"cooloff_minutes": minutes, "failure_limit": settings.AXES_FAILURE_LIMIT},
        status=429,
    )
    # Each failure during the lock starts the cool-off again, so this is the longest wait.
    response["Retry-After"] = str(minutes * 60)
    return response
