"""The drill: real 500s and slow answers on demand, so that the built-in rules api.5xx
and api.latency fire in the demo from the server's own metrics.

Two demo-only URLs, routed only when DEBUG is on (controlplane/urls.py): `fail/`
answers 500 and `slow/` answers after SLOW_SECONDS. They go through the whole
middleware chain like any request, so `http_server_request_duration_seconds` counts
them; Prometheus scrapes that from `/metrics`, and the built-in rules read it there.
`manage.py drill` requests them for a few minutes.
"""

from __future__ import annotations

import time

from django.http import HttpRequest, HttpResponse
from django.urls import path

# Above api.latency's 200 ms, and inside the histogram's 0.25-0.5 s bucket, so the p95
# of a mix with these answers reads well past the threshold.
SLOW_SECONDS = 0.3
# Where controlplane/urls.py routes them, and where `manage.py drill` asks.
PREFIX = "demo/drill/"
FAIL = "fail/"
SLOW = "slow/"

app_name = "drill"


def fail(request: HttpRequest) -> HttpResponse:
    return HttpResponse(
        "A deliberate 500 of the drill (manage.py drill).\n",
        status=500,
        content_type="text/plain; charset=utf-8",
    )


def slow(request: HttpRequest) -> HttpResponse:
    time.sleep(SLOW_SECONDS)
    return HttpResponse(
        f"A deliberately slow answer of the drill ({SLOW_SECONDS * 1000:.0f} ms).\n",
        content_type="text/plain; charset=utf-8",
    )


urlpatterns = [
    path(FAIL, fail, name="fail"),
    path(SLOW, slow, name="slow"),
]
