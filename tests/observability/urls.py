from django.contrib import admin
from django.urls import include, path

from tests.observability import views

# Plain error pages: the project's templates may reverse URLs this module lacks.
handler404 = views.not_found
handler500 = views.server_error

urlpatterns = [
    path("ok/", views.ok),
    path("boom/", views.boom),
    path("forbidden/", views.forbidden),
    path("items/<int:pk>/", views.item),
    path("logs/", views.logs),
    path("orgs/<str:organization>/", views.scoped),
    path("pid/", views.pid),
    path("job/", views.job),
    path("api/whoami/", views.Whoami.as_view()),
    path("admin/", admin.site.urls),
    path("django-prometheus/", include("django_prometheus.urls")),
    path("", include("observability.urls")),
]
