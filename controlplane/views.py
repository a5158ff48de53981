"""Project-wide pages: home, health, and the error handlers."""

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from controlplane.api.errors import json_error, no_endpoint_message
from controlplane.catalog import tenancy
from controlplane.tasks import probe

WORKER_PROBE_TIMEOUT = 10.0


@login_required
def home(request: HttpRequest) -> HttpResponse:
    organizations = tenancy.organizations(request.user)
    return render(request, "home.html", {"organizations": organizations})


def health(request: HttpRequest) -> JsonResponse:
    """The database answers; with ?worker=1, a Celery worker answers a probe task too."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    body: dict = {"status": "ok", "database": "ok"}
    if request.GET.get("worker") != "1":
        return JsonResponse(body)
    if not settings.CELERY_RESULT_BACKEND:
        body.update(status="unknown", worker="set CELERY_RESULT_BACKEND to check workers")
        return JsonResponse(body, status=501)
    try:
        body["worker"] = probe.delay().get(timeout=WORKER_PROBE_TIMEOUT)
    except Exception as error:  # any broker or backend failure means: no worker answered
        body.update(status="degraded", worker=f"no answer: {type(error).__name__}")
        return JsonResponse(body, status=503)
    return JsonResponse(body)


def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def not_found(request: HttpRequest, exception=None) -> HttpResponse:
    if _wants_json(request):
        return json_error(404, no_endpoint_message(request.path))
    return render(request, "404.html", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    if _wants_json(request):
        return json_error(500, "Internal error. Quote the X-Request-Id header when reporting it.")
    return render(request, "500.html", status=500)


def bad_request(request: HttpRequest, exception=None, reason: str = "") -> HttpResponse:
    # Django's own exceptions stay unsaid: their text may describe internals.
    if _wants_json(request):
        return json_error(400, reason or "Bad request.")
    return render(request, "400.html", {"reason": reason}, status=400)
