from django.apps import AppConfig


class PagingConfig(AppConfig):
    name = "controlplane.paging"
    label = "paging"
    verbose_name = "Paging: channels, escalation policies, notifications"

    def ready(self) -> None:
        from controlplane.alerting import outbox
        from controlplane.paging import engine, receivers  # noqa: F401 (connects them)

        # Escalations start, stop and catch up from the alert outbox, in the
        # transaction that takes each event.
        outbox.register("paging", engine.handle)
