from django.apps import AppConfig


class OnCallConfig(AppConfig):
    name = "controlplane.oncall"
    label = "oncall"
    verbose_name = "On call: schedules, shifts, responders"

    def ready(self) -> None:
        from controlplane.oncall import queue  # noqa: F401 (registers calendar.queue)
