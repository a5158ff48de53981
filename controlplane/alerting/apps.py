from django.apps import AppConfig


class AlertingConfig(AppConfig):
    name = "controlplane.alerting"
    label = "alerting"
    verbose_name = "Alerting: rules, alerts, silences"

    def ready(self) -> None:
        from controlplane.alerting import measures, receivers  # noqa: F401
        from controlplane.alerting.runbook_links import rules_citing
        from runbooks import links

        links.register(rules_citing)
        self._register_configured_consumers()

    def _register_configured_consumers(self) -> None:
        from django.conf import settings
        from django.core.exceptions import ImproperlyConfigured
        from django.utils.module_loading import import_string

        from controlplane.alerting import outbox

        for name, path in settings.ALERT_EVENT_CONSUMERS.items():
            try:
                handler = import_string(path)
            except ImportError as error:
                raise ImproperlyConfigured(
                    f"ALERT_EVENT_CONSUMERS names {path!r} for {name!r}, which cannot be "
                    f"imported: {error}"
                ) from None
            outbox.register(name, handler)
