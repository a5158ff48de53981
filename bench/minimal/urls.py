from django.urls import include, path

from bench.minimal import settings, views

urlpatterns = [
    path("json/", views.small_json),
    path("query/", views.one_query),
]
if settings.VARIANT == "standard":
    urlpatterns.append(path("", include("django_prometheus.urls")))
elif settings.VARIANT == "package":
    urlpatterns.append(path("", include("observability.urls")))
