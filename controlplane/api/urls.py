from django.urls import include, path, re_path
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from controlplane.api.alerts import AlertViewSet
from controlplane.api.errors import endpoint_not_found
from controlplane.api.rules import RuleViewSet
from controlplane.api.runbooks import RunbookViewSet
from controlplane.api.services import ServiceViewSet
from controlplane.api.sources import SourceViewSet


class RedocView(SpectacularRedocView):
    """ReDoc that loads nothing from another host, so it renders offline and leaks no reader."""

    # drf-spectacular's template less its Google Fonts links; ReDoc uses the system's fonts.
    template_name = "api/redoc.html"

    @extend_schema(exclude=True)
    def get(self, request: Request, *args, **kwargs) -> Response:
        response = super().get(request, *args, **kwargs)
        # ReDoc's bundle hard-codes its attribution logo at cdn.redoc.ly; refusing other
        # hosts' images stops that call (ReDoc hides the logo when it does not load).
        response["Content-Security-Policy"] = "img-src 'self' data:"
        return response


router = SimpleRouter()
router.register("services", ServiceViewSet, basename="service")
router.register("runbooks", RunbookViewSet, basename="runbook")
router.register("alerts", AlertViewSet, basename="alert")
router.register("rules", RuleViewSet, basename="rule")
router.register("sources", SourceViewSet, basename="source")

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("redoc/", RedocView.as_view(url_name="api-schema"), name="api-redoc"),
    path("", include(router.urls)),
    # Last: any other path under /api/v1/ is a JSON 404, also with DEBUG on.
    re_path(r"", endpoint_not_found),
]
