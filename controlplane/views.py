"""Project-wide pages: health and the error handlers (the home page is the overview:
controlplane/overview)."""

from datetime import timedelta

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone

from controlplane.api.errors import json_error, no_endpoint_message
from controlplane.catalog.models import WorkerHeartbeat

# Beat queues the heartbeat every HEARTBEAT_EVERY seconds; a worker heard of within
# a few periods is alive (a busy worker may take a tick late).
HEARTBEAT_EVERY = 10
HEARTBEAT_FRESH = timedelta(seconds=3 * HEARTBEAT_EVERY)


def health(request: HttpRequest) -> JsonResponse:
    """The database answers; with ?worker=1, a worker ran beat's heartbeat lately.

    Both are one read: nothing here waits on a worker, so an anonymous caller polling
    it cannot hold a web worker (it needs no login: load balancers call it).
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    body: dict = {"status": "ok", "database": "ok"}
    if request.GET.get("worker") != "1":
        return JsonResponse(body)
    last = WorkerHeartbeat.objects.order_by("-seen_at").values_list("seen_at", flat=True).first()
    if last is None:
        body.update(status="degraded", worker="no worker has run the heartbeat yet")
        return JsonResponse(body, status=503)
    age = max(0.0, (timezone.now() - last).total_seconds())
    body["worker_heartbeat_age_seconds"] = round(age, 1)
    if age > HEARTBEAT_FRESH.total_seconds():
        body.update(
            status="degraded",
            worker=f"no heartbeat for {age:.0f} s (beat or every worker is down)",
        )
        return JsonResponse(body, status=503)
    body["worker"] = "ok"
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
