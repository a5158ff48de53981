"""/ping/: the Healthchecks ping API (controlplane/jobs/pings.py), at the site's root so
a client's base URL is {SITE_URL}/ping/."""

from django.urls import path, re_path

from controlplane.jobs import pings

app_name = "pings"

_MONITOR = "<str:ping_key>/<str:slug>"

urlpatterns = [
    path(_MONITOR, pings.ping, name="success"),
    path(f"{_MONITOR}/start", pings.ping, {"kind": "start"}, name="start"),
    path(f"{_MONITOR}/fail", pings.ping, {"kind": "fail"}, name="fail"),
    path(f"{_MONITOR}/log", pings.ping, {"kind": "log"}, name="log"),
    path(f"{_MONITOR}/<int:exit_status>", pings.ping, {"kind": "exit"}, name="exit"),
    # Anything else here answers as Healthchecks does, in plain text, not with a page.
    re_path(r"^(?P<rest>.*)$", pings.unknown, name="unknown"),
]
