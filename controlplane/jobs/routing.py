"""Which escalation policy pages for a job monitor's alert.

A monitor's failures reach people through the built-in rule `etl.job.failure`, one
rule for every monitor; the alert names its monitor by its `job` label. The monitor's
own policy, when it names one, wins over the rule's (paging.engine.policy_for)."""

from __future__ import annotations

from controlplane.alerting.models import Alert
from controlplane.jobs.models import JobMonitor

# The built-in rules whose alerts are about one job monitor (label `job`).
JOB_RULES = frozenset({"etl.job.failure", "audit.job.failure"})


def monitor_policy(alert: Alert):
    """The escalation policy of the monitor the alert is about, or None."""
    slug = (alert.labels or {}).get("job")
    if alert.rule_key not in JOB_RULES or not slug:
        return None
    monitor = (
        JobMonitor.objects.filter(organization_id=alert.organization_id, slug=slug)
        .select_related("escalation_policy")
        .first()
    )
    return monitor.escalation_policy if monitor is not None else None
