from django.contrib import admin
from django.urls import include, path, re_path
from rest_framework.routers import SimpleRouter

from tests.observability import views

# Plain error pages: the project's templates may reverse URLs this module lacks.
handler404 = views.not_found
handler500 = views.server_error

# Routers declare regular-expression routes, as the control plane's API does.
router = SimpleRouter()
router.register("rules", views.RuleViewSet, basename="rule")

urlpatterns = [
    path("ok/", views.ok),
    path("boom/", views.boom),
    path("forbidden/", views.forbidden),
    path("items/<int:pk>/", views.item),
    re_path(r"^feeds/(?P<name>[\w-]+)\.xml$", views.feed),
    path("api/", include(router.urls)),
    path("logs/", views.logs),
    path("orgs/<str:organization>/", views.scoped),
    path("pid/", views.pid),
    path("job/", views.job),
    path("api/whoami/", views.Whoami.as_view()),
    path("admin/", admin.site.urls),
    path("django-prometheus/", include("django_prometheus.urls")),
    path("", include("observability.urls")),
]
