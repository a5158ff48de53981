from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from controlplane.api.alerts import AlertViewSet
from controlplane.api.errors import endpoint_not_found
from controlplane.api.rules import RuleViewSet
from controlplane.api.runbooks import RunbookViewSet
from controlplane.api.services import ServiceViewSet
from controlplane.api.sources import SourceViewSet

router = SimpleRouter()
router.register("services", ServiceViewSet, basename="service")
router.register("runbooks", RunbookViewSet, basename="runbook")
router.register("alerts", AlertViewSet, basename="alert")
router.register("rules", RuleViewSet, basename="rule")
router.register("sources", SourceViewSet, basename="source")

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include(router.urls)),
    # Last: any other path under /api/v1/ is a JSON 404, also with DEBUG on.
    re_path(r"", endpoint_not_found),
]
