from typing import Any

from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "controlplane.audit"
    label = "audit"
    verbose_name = "Audit trail"

    def ready(self) -> None:
        from controlplane.audit import audited

        audited.connect()
        _name_tasks_as_actors()
        _seed_retention_monitors()


def _name_tasks_as_actors() -> None:
    """A Celery task's changes are made by `system:<task name>` unless it names another."""
    from celery import signals

    from controlplane.catalog import actors

    resets: dict[str, Any] = {}

    def begin(task_id: str | None = None, task: Any = None, **_: Any) -> None:
        name = getattr(task, "name", "") or "task"
        try:
            actor = actors.Actor.system(name.replace(":", "."))
        except actors.ActorError:
            return
        resets[task_id or ""] = actors.begin_acting(actor)

    def end(task_id: str | None = None, **_: Any) -> None:
        reset = resets.pop(task_id or "", None)
        if reset is not None:
            try:
                actors.end_acting(reset)
            except ValueError:
                pass  # reset from another context (a task run eagerly inside a request)

    signals.task_prerun.connect(begin, weak=False, dispatch_uid="audit-task-actor-begin")
    signals.task_postrun.connect(end, weak=False, dispatch_uid="audit-task-actor-end")


def _seed_retention_monitors() -> None:
    """A new organisation gets its built-in `audit-retention` job monitor (job.py) at
    once: the retention job reports its runs there, and a night it never runs is missed."""
    from django.db.models.signals import post_save

    from controlplane.audit import job
    from controlplane.catalog.models import Organization

    post_save.connect(
        job.seed_for_new_organization, sender=Organization, dispatch_uid=job.SEED_DISPATCH_UID
    )
