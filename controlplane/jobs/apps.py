from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "controlplane.jobs"
    label = "jobs"
    verbose_name = "Jobs: monitors and runs"

    def ready(self) -> None:
        from controlplane.jobs import signals  # noqa: F401 (registers the jobs.* signals)
        from controlplane.jobs.routing import monitor_policy
        from controlplane.paging.engine import register_policy_finder

        register_policy_finder(monitor_policy)
