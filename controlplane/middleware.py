"""At the door: requests the database could not even be asked about are refused, and
every response says what the browser may load (Content-Security-Policy, HSTS)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from django.conf import settings
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


CSP_HEADER = "Content-Security-Policy"
HSTS_HEADER = "Strict-Transport-Security"


def content_security_policy(
    img_hosts: Iterable[str] = (), extra: Mapping[str, Iterable[str]] | None = None
) -> str:
    """The policy of every page; img_hosts are the origins images may come from too.

    extra adds sources to directives, for the one page that needs more (ReDoc).
    """
    directives: dict[str, list[str]] = {
        "default-src": ["'self'"],
        # No 'unsafe-inline' and no 'unsafe-eval': markup that slips past the runbook
        # sanitiser, or a template bug, still cannot run script.
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        # Style attributes only: runbook tables align their cells with them (the
        # sanitiser keeps text-align alone); <style> elements stay refused.
        "style-src-attr": ["'unsafe-inline'"],
        # data: for the admin's and Swagger UI's icons in their stylesheets.
        "img-src": ["'self'", "data:", *img_hosts],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
    for name, sources in (extra or {}).items():
        directives.setdefault(name, []).extend(sources)
    return "; ".join(f"{name} {' '.join(sources)}" for name, sources in directives.items())


def strict_transport_security(seconds: int, include_subdomains: bool) -> str | None:
    if seconds <= 0:
        return None
    return f"max-age={seconds}" + ("; includeSubDomains" if include_subdomains else "")


class SecurityHeaders:
    """Content-Security-Policy and Strict-Transport-Security on every response.

    A view that sets its own Content-Security-Policy keeps it (the ReDoc page, built
    with content_security_policy() too). HSTS is sent whatever the scheme of the
    request: browsers ignore it over plain HTTP, and behind a proxy that ends TLS
    Django cannot tell HTTPS requests apart (Django's SecurityMiddleware, placed
    before this one, then finds the header set and leaves it).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        # Read per response, not at start-up, so a test's settings override applies.
        response.setdefault(CSP_HEADER, content_security_policy(settings.CSP_IMG_HOSTS))
        hsts = strict_transport_security(
            settings.SECURE_HSTS_SECONDS, settings.SECURE_HSTS_INCLUDE_SUBDOMAINS
        )
        if hsts is not None:
            response.setdefault(HSTS_HEADER, hsts)
        return response
