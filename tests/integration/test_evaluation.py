"""The alerting engine against a real Prometheus over backfilled data with known values."""

from __future__ import annotations

from datetime import timedelta

import pytest

from controlplane.alerting import evaluation
from controlplane.alerting.models import Alert, AlertEvent, AlertRule
from controlplane.catalog.models import MetricSource, SourceHealth
from tests import waiting
from tests.integration.prometheus import T0

pytestmark = pytest.mark.integration

MINUTE = 60


def minutes(n: float):
    return T0 + timedelta(minutes=n)


def ratio_series():
    """errors_ratio per instance: `a` breaches from 5m to 14m, `b` from 5m to 40m."""
    a, b = [], []
    for m in range(0, 41):
        t = T0.timestamp() + m * MINUTE
        a.append((t, 0.05 if 5 <= m <= 14 else 0.0))
        b.append((t, 0.05 if m >= 5 else 0.0))
    return {
        'errors_ratio{instance="a",job="api"}': a,
        'errors_ratio{instance="b",job="api"}': b,
    }


@pytest.fixture(scope="module")
def prometheus(prometheus_factory):
    return prometheus_factory(ratio_series())


@pytest.fixture
def source(org, prometheus):
    return MetricSource.objects.create(organization=org, name="prom", url=prometheus.url, timeout=5)


@pytest.fixture
def rule(org, service, source):
    return AlertRule.objects.create(
        organization=org,
        service=service,
        key="api.errors",
        name="API errors",
        severity="critical",
        source=source,
        expr="errors_ratio",
        op=">",
        threshold=0.01,
        for_duration=timedelta(minutes=2),
        keep_firing_for=timedelta(minutes=3),
        annotations={"summary": "{{ $labels.instance }} at {{ $value | humanizePercentage }}"},
    )


def evaluate_at(rule: AlertRule, minute: float) -> AlertRule:
    evaluation.evaluate_claimed([rule.pk], at=minutes(minute))
    rule.refresh_from_db()
    return rule


def open_alerts(rule):
    return {
        a.labels["instance"]: a for a in Alert.objects.filter(rule=rule).exclude(state="resolved")
    }


@pytest.mark.django_db
def test_rule_walks_pending_firing_and_resolves_with_keep_firing_for(rule):
    assert evaluate_at(rule, 4).evaluation.state == "inactive"
    assert evaluate_at(rule, 5).evaluation.state == "pending"
    assert not Alert.objects.exists()
    assert evaluate_at(rule, 6).evaluation.state == "pending"

    assert evaluate_at(rule, 7).evaluation.state == "firing"  # true since 5m, for=2m
    alerts = open_alerts(rule)
    assert set(alerts) == {"a", "b"}  # one alert per label set
    assert alerts["a"].value == pytest.approx(0.05)
    assert alerts["a"].annotations["summary"] == "a at 5%"
    assert alerts["a"].started_at == minutes(5)

    # `a` is last seen breaching at 14m and first found false at 15m;
    # keep_firing_for=3m counts from 15m (Prometheus' KeepFiringSince): held until 18m.
    for minute in (14, 15, 16, 17):
        evaluate_at(rule, minute)
        assert set(open_alerts(rule)) == {"a", "b"}, f"minute {minute}"
    evaluate_at(rule, 18)
    assert set(open_alerts(rule)) == {"b"}
    resolved = Alert.objects.get(rule=rule, labels__instance="a")
    assert resolved.state == "resolved"
    assert resolved.resolved_at == minutes(18)
    kinds = list(resolved.events.values_list("kind", flat=True))
    assert kinds == [AlertEvent.Kind.OPENED, AlertEvent.Kind.RESOLVED]

    # Re-evaluating a firing instance opens nothing new.
    evaluate_at(rule, 19)
    assert Alert.objects.filter(rule=rule).count() == 2


@pytest.mark.django_db
def test_no_for_fires_on_the_first_true_evaluation(rule):
    rule.for_duration = timedelta(0)
    rule.save()

    assert evaluate_at(rule, 5).evaluation.state == "firing"
    assert set(open_alerts(rule)) == {"a", "b"}


@pytest.mark.django_db
def test_source_stopped_mid_run_is_unknown_and_keeps_alerts_firing(org, rule, prometheus):
    from controlplane.alerting.builtin import seed_rules

    seed_rules(org)
    source_down = AlertRule.objects.get(organization=org, key="source.down")
    evaluate_at(rule, 5)
    evaluate_at(rule, 7)
    assert set(open_alerts(rule)) == {"a", "b"}

    prometheus.stop()
    try:
        # Past a's keep_firing_for: only an outage could "resolve" it now, and must not.
        assert evaluate_at(rule, 20).evaluation.state == "unknown"
        assert rule.evaluation.last_error
        assert set(open_alerts(rule)) == {"a", "b"}
        health = SourceHealth.objects.get(source_id=rule.source_id)
        assert health.failing_since is not None

        # source.down fires once the source has failed for longer than 5 minutes.
        evaluation.evaluate_claimed([source_down.pk])
        assert not Alert.objects.filter(rule=source_down).exists()
        SourceHealth.objects.filter(pk=health.pk).update(
            failing_since=health.failing_since - timedelta(minutes=6)
        )
        evaluation.evaluate_claimed([source_down.pk])
        down = Alert.objects.get(rule=source_down)
        assert down.labels == {"source": "prom"}
        assert down.state == "firing"
    finally:
        prometheus.start()

    # Back up: the source recovers, and `a` resolves on real data, keep_firing_for
    # (3m) after the first evaluation that found it false.
    evaluate_at(rule, 21)
    assert set(open_alerts(rule)) == {"a", "b"}
    evaluate_at(rule, 24)
    assert set(open_alerts(rule)) == {"b"}
    assert SourceHealth.objects.get(source_id=rule.source_id).failing_since is None


@pytest.mark.django_db
def test_alert_carries_the_evaluation_spans_trace_id(rule, spans):
    rule.for_duration = timedelta(0)
    rule.save()

    evaluate_at(rule, 5)

    evaluation_spans = [s for s in spans.get_finished_spans() if s.name == "alerting.evaluate"]
    assert len(evaluation_spans) == 1
    span = evaluation_spans[0]
    assert span.attributes["alerting.rule.key"] == "api.errors"
    assert span.attributes["app.organization.id"] == str(rule.organization_id)
    trace_id = format(span.context.trace_id, "032x")
    for alert in Alert.objects.filter(rule=rule):
        assert alert.trace_id == trace_id
        assert alert.span_id == format(span.context.span_id, "016x")
        assert alert.audit["rule"] == "api.errors"
        assert alert.audit["actor"] == "system:beat"
        assert alert.events.get(kind="opened").trace_id == trace_id


@pytest.mark.django_db
def test_rules_sharing_an_expression_share_one_query(org, service, source, rule, spans):
    twin = AlertRule.objects.create(
        organization=org,
        key="api.errors-twin",
        name="twin",
        source=source,
        expr="errors_ratio",
        op=">",
        threshold=0.04,
    )

    evaluation.evaluate_claimed([rule.pk, twin.pk], at=minutes(7))

    queries = [s for s in spans.get_finished_spans() if s.name in {"POST", "HTTP POST"}]
    assert len(queries) == 1
    assert AlertRule.objects.get(pk=twin.pk).evaluation.state == "firing"


def test_two_workers_evaluating_at_once_open_exactly_one_alert(
    celery_workers, org, service, prometheus
):
    from tests.services import require_postgresql

    require_postgresql()
    from controlplane.alerting.tasks import evaluate_rules

    source = MetricSource.objects.create(organization=org, name="prom", url=prometheus.url)
    rule = AlertRule.objects.create(
        organization=org,
        key="api.errors",
        name="API errors",
        source=source,
        expr='errors_ratio{instance="b"}',
        op=">",
        threshold=0.01,
    )
    celery_workers.start("one")
    celery_workers.start("two")

    at = minutes(10).isoformat()
    sent = 20
    for _ in range(sent):
        evaluate_rules.apply_async(([rule.pk],), {"at": at})

    def finished() -> int:
        # Evaluations only: the outbox dispatcher runs on the same workers.
        return sum(
            line.count(" succeeded in ")
            for log in celery_workers.logs()
            for line in log.splitlines()
            if "alerting.evaluate_rules[" in line
        )

    def all_finished() -> bool:
        for worker, log in celery_workers.processes:
            if worker.poll() is not None:
                raise AssertionError(
                    f"a worker exited with {worker.returncode}:\n{log.read_text()[-3000:]}"
                )
        return finished() >= sent

    # Two workers on a loaded machine: as long as any other wait for a process.
    waiting.until(
        all_finished,
        what=f"{sent} evaluate_rules tasks to succeed on two workers",
        log=lambda: "\n".join(log[-2000:] for log in celery_workers.logs()),
    )
    assert finished() == sent
    assert all("alerting.evaluate_rules[" in log for log in celery_workers.logs()), (
        "both workers took tasks"
    )
    assert Alert.objects.filter(rule=rule).count() == 1
    assert AlertRule.objects.get(pk=rule.pk).evaluation.state == "firing"
