from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "controlplane.api"
    label = "api"
    verbose_name = "REST API"

    def ready(self) -> None:
        from controlplane.api import schema  # noqa: F401 - registers the OpenAPI extension
