from django.apps import AppConfig


class AlertingConfig(AppConfig):
    name = "controlplane.alerting"
    label = "alerting"
    verbose_name = "Alerting: rules, alerts, silences"

    def ready(self) -> None:
        from controlplane.alerting import internal_signals, receivers  # noqa: F401
        from controlplane.alerting.runbook_links import rules_citing
        from runbooks import links

        links.register(rules_citing)
