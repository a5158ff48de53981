"""Built-in rules, the beat schedules, and the fan-out of due rules."""

import pytest
from django.core.management import call_command
from django_celery_beat.models import PeriodicTask

from controlplane.alerting.models import AlertRule
from controlplane.alerting.tasks import BATCH_SIZE, batches
from controlplane.catalog.models import MetricSource, Organization
from runbooks.models import Runbook

pytestmark = pytest.mark.django_db


def keys(org):
    return set(AlertRule.objects.filter(organization=org).values_list("key", flat=True))


def test_new_organisation_gets_source_down_and_promql_rules_with_its_first_source(db):
    Runbook.objects.create(slug="api-5xx", title="API 5xx", summary="s", body="b", owner="sre")
    org = Organization.objects.create(slug="new", name="New")
    assert keys(org) == {"source.down", "calendar.queue", "etl.job.failure", "audit.job.failure"}

    MetricSource.objects.create(organization=org, name="prom", url="http://prometheus:9090")

    assert keys(org) == {
        "source.down",
        "calendar.queue",
        "etl.job.failure",
        "audit.job.failure",
        "api.5xx",
        "api.latency",
    }
    five_xx = AlertRule.objects.get(organization=org, key="api.5xx")
    assert five_xx.builtin
    assert five_xx.runbook.slug == "api-5xx"
    assert "http_server_request_duration_seconds_count" in five_xx.expr
    assert (five_xx.op, five_xx.threshold, five_xx.severity) == (">", 0.01, "critical")
    latency = AlertRule.objects.get(organization=org, key="api.latency")
    assert "histogram_quantile(0.95" in latency.expr
    assert latency.threshold == 0.2


def test_seed_rules_recreates_only_what_is_missing(org, capsys):
    MetricSource.objects.create(organization=org, name="prom", url="http://prometheus:9090")
    AlertRule.objects.filter(organization=org, key="api.latency").delete()
    AlertRule.objects.filter(organization=org, key="api.5xx").update(threshold=0.05)

    call_command("seed_rules", "acme")

    assert "created: api.latency" in capsys.readouterr().out
    assert AlertRule.objects.get(organization=org, key="api.5xx").threshold == 0.05


def test_seed_rules_says_why_promql_rules_wait(org, capsys):
    AlertRule.objects.filter(organization=org).delete()
    call_command("seed_rules", "acme")
    out = capsys.readouterr().out
    assert "created: source.down, calendar.queue, etl.job.failure" in out
    assert "no metric source yet): api.5xx, api.latency" in out


def test_beat_schedules_come_from_a_migration(db):
    tasks = dict(PeriodicTask.objects.values_list("task", "enabled"))
    assert tasks["alerting.evaluate_due_rules"] is True
    assert tasks["alerting.release_ended_silences"] is True


def test_batches_keep_rules_sharing_a_query_together(org):
    source = MetricSource.objects.create(organization=org, name="prom", url="http://p:9090")
    rules = AlertRule.objects.bulk_create(
        AlertRule(organization=org, key=f"r{i}", name="r", source=source, expr=f"metric_{i % 3}")
        for i in range(BATCH_SIZE * 2 + 10)
    )
    ids = [r.pk for r in rules]

    grouped = batches(ids)

    assert sorted(pk for batch in grouped for pk in batch) == sorted(ids)
    assert all(len(batch) <= BATCH_SIZE for batch in grouped)
    expr_of = dict(AlertRule.objects.filter(pk__in=ids).values_list("pk", "expr"))
    exprs_per_batch = [{expr_of[pk] for pk in batch} for batch in grouped]
    # Ordered by expression: each expression spans as few batches as possible.
    assert sum(len(e) for e in exprs_per_batch) <= 3 + len(grouped) - 1
