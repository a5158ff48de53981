from django.contrib import admin
from django.urls import include, path

from controlplane import views

admin.site.site_header = "Observability control plane"
admin.site.site_title = "Control plane admin"

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.health, name="health"),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/v1/", include("controlplane.api.urls")),
    path("runbooks/", include("runbooks.urls")),
    path("alerts/", include("controlplane.alerting.urls")),
    path("", include("observability.urls")),
]

handler400 = "controlplane.views.bad_request"
handler404 = "controlplane.views.not_found"
handler500 = "controlplane.views.server_error"
