from django.apps import AppConfig


class ObservabilityConfig(AppConfig):
    name = "observability"
    verbose_name = "Observability"

    def ready(self) -> None:
        from observability import celery, options, tracing

        configured = options.load()
        if not configured.enabled:
            return
        # Tracing first: the Celery instrumentation's signal handlers must run
        # before ours, so our task_prerun finds the task span current.
        tracing.configure(configured.service_name, configured.otlp_endpoint, configured.log_spans)
        celery.connect_signals()
