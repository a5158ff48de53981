"""Refusing, at the door, requests the database could not even be asked about."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from controlplane.catalog.validators import NUL
from controlplane.views import bad_request

NUL_IN_URL = "The URL contains a NUL character (%00), which no name or search here can hold."


def carries_nul(request: HttpRequest) -> bool:
    """A NUL in the path or anywhere in the query string, as decoded."""
    if NUL in request.path:
        return True
    return any(
        NUL in name or any(NUL in value for value in values) for name, values in request.GET.lists()
    )


class RejectNulBytes:
    """PostgreSQL refuses NUL in text, so a slug or a search term carrying one would
    fail deep inside a query as a 500. One check here answers 400 for every page and
    endpoint, present and future. Request bodies are the forms' and serializers' job."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if carries_nul(request):
            return bad_request(request, reason=NUL_IN_URL)
        return self.get_response(request)
