from django.conf import settings
from django.urls import include, path, re_path
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularRedocView,
    SpectacularSwaggerSplitView,
)
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from controlplane.api.alerts import AlertViewSet
from controlplane.api.annotations import AnnotationViewSet
from controlplane.api.audit import AuditEventViewSet
from controlplane.api.channels import ChannelViewSet
from controlplane.api.errors import endpoint_not_found
from controlplane.api.integrations import KeyIntake, TokenIntake
from controlplane.api.jobs import JobViewSet
from controlplane.api.notifications import NotificationViewSet
from controlplane.api.policies import PolicyViewSet
from controlplane.api.rules import RuleViewSet
from controlplane.api.runbooks import RunbookViewSet
from controlplane.api.schedules import ScheduleViewSet
from controlplane.api.services import ServiceViewSet
from controlplane.api.slos import SLOViewSet
from controlplane.api.sources import SourceViewSet
from controlplane.middleware import CSP_HEADER, content_security_policy


class SwaggerView(SpectacularSwaggerSplitView):
    """Swagger UI under the site's Content-Security-Policy, which refuses inline script:
    the page loads its initialiser from this same view (?script=), and its style from
    a static file."""

    template_name = "api/swagger_ui.html"


REDOC_EXTRA = {"style-src": ["'unsafe-inline'"], "worker-src": ["'self'", "blob:"]}


class RedocView(SpectacularRedocView):
    """ReDoc that loads nothing from another host, so it renders offline and leaks no reader."""

    # drf-spectacular's template less its Google Fonts links; ReDoc uses the system's fonts.
    template_name = "api/redoc.html"

    @extend_schema(exclude=True)
    def get(self, request: Request, *args, **kwargs) -> Response:
        response = super().get(request, *args, **kwargs)
        # The site's policy, plus what ReDoc's bundle does at run time: it writes <style>
        # elements and starts its search index as a worker from a blob: URL. Still no
        # inline script. Its images are refused from other hosts as everywhere, which
        # stops the call its bundle makes for its attribution logo at cdn.redoc.ly
        # (ReDoc hides the logo when it does not load).
        response[CSP_HEADER] = content_security_policy(settings.CSP_IMG_HOSTS, REDOC_EXTRA)
        return response


router = SimpleRouter()
router.register("services", ServiceViewSet, basename="service")
router.register("runbooks", RunbookViewSet, basename="runbook")
router.register("alerts", AlertViewSet, basename="alert")
router.register("rules", RuleViewSet, basename="rule")
router.register("sources", SourceViewSet, basename="source")
router.register("channels", ChannelViewSet, basename="channel")
router.register("escalation-policies", PolicyViewSet, basename="escalation-policy")
router.register("notifications", NotificationViewSet, basename="notification")
router.register("schedules", ScheduleViewSet, basename="schedule")
router.register("slos", SLOViewSet, basename="slo")
router.register("jobs", JobViewSet, basename="job")
router.register("audit", AuditEventViewSet, basename="audit-event")
router.register("annotations", AnnotationViewSet, basename="annotation")

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("redoc/", RedocView.as_view(url_name="api-schema"), name="api-redoc"),
    path("", include(router.urls)),
    path(
        "integrations/alertmanager/",
        TokenIntake.as_view({"post": "receive"}),
        name="alertmanager-intake",
    ),
    path(
        "integrations/alertmanager/<str:key>/",
        KeyIntake.as_view({"post": "receive"}),
        name="alertmanager-intake-key",
    ),
    # Last: any other path under /api/v1/ is a JSON 404, also with DEBUG on.
    re_path(r"", endpoint_not_found),
]
