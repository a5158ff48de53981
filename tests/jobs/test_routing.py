"""A job monitor's alert escalates on the monitor's own policy when it names one."""

from controlplane.alerting.models import AlertRule
from controlplane.paging.engine import policy_for
from tests.factories import make_alert, make_channel, make_job, make_policy, make_rule


def policy(organization, slug, **fields):
    channel = make_channel(organization, f"{slug}-mail", "email", to=["sre@example.com"])
    return make_policy(organization, slug, steps=[(0, [channel])], **fields)


def test_the_monitors_policy_wins_over_the_rules_and_the_default(org):
    default = policy(org, "default", is_default=True)
    payroll_team = policy(org, "payroll-team")
    make_job(org, "payroll-export", escalation_policy=payroll_team)
    make_job(org, "equipment-sync")
    rule = AlertRule.objects.get(organization=org, key="etl.job.failure")  # built in

    named = make_alert(rule, "fp-payroll", labels={"job": "payroll-export"})
    unnamed = make_alert(rule, "fp-equipment", labels={"job": "equipment-sync"})

    assert policy_for(named) == payroll_team
    assert policy_for(unnamed) == default


def test_another_rules_alert_with_a_job_label_is_not_routed_by_a_monitor(org, other_org):
    policy(org, "default", is_default=True)
    make_job(org, "payroll-export", escalation_policy=policy(org, "payroll-team"))
    make_job(other_org, "theirs", escalation_policy=policy(other_org, "their-team"))
    other_rule = make_rule(org, "queue.depth")
    job_rule = AlertRule.objects.get(organization=org, key="etl.job.failure")

    assert policy_for(make_alert(other_rule, "a", labels={"job": "payroll-export"})).slug == (
        "default"
    )
    # A label naming another organisation's monitor finds nothing of it.
    assert policy_for(make_alert(job_rule, "b", labels={"job": "theirs"})).slug == "default"
