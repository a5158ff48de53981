from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path

from controlplane import views
from controlplane.alerting import drill
from controlplane.api.errors import endpoint_not_found
from controlplane.overview import views as overview

admin.site.site_header = "Observability control plane"
admin.site.site_title = "Control plane admin"

urlpatterns = [
    path("", overview.home, name="home"),
    path("healthz", views.health, name="health"),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/v1/", include("controlplane.api.urls")),
    # Other API versions, or none: JSON too, also with DEBUG on.
    re_path(r"^api/", endpoint_not_found),
    path("runbooks/", include("runbooks.urls")),
    path("docs/", include("controlplane.knowledge.urls")),
    path("alerts/", include("controlplane.alerting.urls")),
    path("alerts/", include("controlplane.paging.urls")),
    path("oncall/", include("controlplane.oncall.urls")),
    path("slos/", include("controlplane.slo.urls")),
    path("jobs/", include("controlplane.jobs.urls")),
    path("ping/", include("controlplane.jobs.ping_urls")),
    path("", include("observability.urls")),
]

if settings.DEBUG:
    # The demo's drill (manage.py drill): a 500 and a slow answer on purpose. Never
    # routed with DEBUG off.
    urlpatterns.append(path(drill.PREFIX, include(drill)))

handler400 = "controlplane.views.bad_request"
handler404 = "controlplane.views.not_found"
handler500 = "controlplane.views.server_error"
