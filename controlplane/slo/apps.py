from django.apps import AppConfig


class SloConfig(AppConfig):
    name = "controlplane.slo"
    label = "slo"
    verbose_name = "SLOs: budgets, burn rates, history"

    def ready(self) -> None:
        from controlplane.slo.runbook_links import slos_citing
        from runbooks import links

        links.register(slos_citing)
