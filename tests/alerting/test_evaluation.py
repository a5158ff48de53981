"""Evaluation edge cases: internal signals, garbage from a source, unusable queries."""

from datetime import timedelta

import pytest
from django.utils import timezone

from controlplane.alerting import evaluation, lifecycle
from controlplane.alerting.models import Alert, AlertRule, RuleEvaluation
from controlplane.catalog.actors import Actor
from controlplane.catalog.models import MetricSource, SourceHealth
from tests.promql.fake import vector
from tests.services import BlackHole

pytestmark = pytest.mark.django_db


@pytest.fixture
def source(org, fake):
    return MetricSource.objects.create(organization=org, name="prom", url=fake.url, timeout=2)


@pytest.fixture
def rule(org, source):
    return AlertRule.objects.create(
        organization=org,
        key="queue.depth",
        name="Queue depth",
        source=source,
        expr="queue_depth",
        op=">",
        threshold=3,
    )


def sample(value, **labels):
    return {"metric": labels, "value": [1767225600, str(value)]}


def evaluate(rule):
    evaluation.evaluate_claimed([rule.pk])
    rule.refresh_from_db()
    return rule


@pytest.mark.parametrize(
    ("status", "body", "content_type"),
    [
        (200, b"<html><body>Login</body></html>", "text/html"),
        (200, b'{"status": "success", "data": {"resultType": "vector", "resu', "application/json"),
        (200, b'{"status": "error", "errorType": "internal", "error": "boom"}', "application/json"),
        (502, b"Bad gateway", "text/plain"),
        (200, b"[]", "application/json"),
    ],
)
def test_garbage_from_the_source_is_a_source_error_not_a_crash(
    fake, rule, status, body, content_type
):
    fake.reply = fake.raw(status, body, content_type)

    outcome = evaluation.evaluate_claimed([rule.pk])

    assert [o.result for o in outcome] == ["source_error"]
    rule.refresh_from_db()
    assert rule.evaluation.state == "unknown"
    assert rule.evaluation.last_error
    assert SourceHealth.objects.get(source_id=rule.source_id).failing_since is not None


def test_a_bad_query_is_the_rules_fault_not_the_sources(fake, rule):
    fake.answer(400, {"status": "error", "errorType": "bad_data", "error": "parse error at char 3"})

    [outcome] = evaluation.evaluate_claimed([rule.pk])

    assert outcome.result == "bad_query"
    rule.refresh_from_db()
    assert rule.evaluation.state == "unknown"
    assert "parse error" in rule.evaluation.last_error
    assert SourceHealth.objects.get(source_id=rule.source_id).failing_since is None


def test_two_series_with_one_label_set_make_the_rule_unknown(fake, rule):
    fake.answer(
        200,
        vector(
            {"metric": {"__name__": "a", "q": "x"}, "value": [1, "5"]},
            {"metric": {"__name__": "b", "q": "x"}, "value": [1, "6"]},
        ),
    )

    assert evaluate(rule).evaluation.state == "unknown"
    assert "more than one series" in rule.evaluation.last_error
    assert not Alert.objects.exists()


def test_firing_alert_value_follows_the_source(fake, rule):
    fake.answer(200, vector(sample(5, queue="mail")))
    evaluate(rule)
    fake.answer(200, vector(sample(9, queue="mail")))
    evaluate(rule)

    alert = Alert.objects.get(rule=rule)
    assert alert.value == 9
    assert alert.labels == {"queue": "mail"}
    assert rule.evaluation.last_value == 9


def test_a_nan_series_fires_like_any_series_when_the_query_is_the_condition(fake, rule):
    # As in Prometheus: a series present in the result fires, whatever its value.
    rule.op, rule.threshold = "", None
    rule.save()
    fake.answer(200, vector(sample("NaN", queue="mail")))

    assert evaluate(rule).evaluation.state == "firing"
    assert Alert.objects.get(rule=rule).labels == {"queue": "mail"}


def test_rule_labels_are_added_to_the_alert(fake, rule):
    rule.labels = {"team": "payments"}
    rule.save()
    fake.answer(200, vector(sample(5, queue="mail")))

    evaluate(rule)

    assert Alert.objects.get(rule=rule).labels == {"queue": "mail", "team": "payments"}


def test_a_manually_resolved_alert_is_not_reopened_while_still_firing(fake, rule):
    fake.answer(200, vector(sample(5, queue="mail")))
    evaluate(rule)
    lifecycle.resolve(Alert.objects.get(rule=rule), actor=Actor.parse("user:1"))

    evaluate(rule)

    assert Alert.objects.filter(rule=rule).count() == 1
    assert not Alert.objects.filter(rule=rule).exclude(state="resolved").exists()


def test_internal_signal_rule_needs_no_prometheus(org, rule, fake):
    fake.answer(200, vector(sample(5, queue="mail")))
    evaluate(rule)  # opens one warning alert (the default severity)
    meta = AlertRule.objects.create(
        organization=org,
        key="many.alerts",
        name="Too many alerts",
        expr="alerts.firing",
        op=">=",
        threshold=1,
    )

    evaluate(meta)

    fired = Alert.objects.get(rule=meta)
    assert fired.labels == {"severity": "warning"}
    assert fired.value == 1


def test_a_rule_is_not_evaluated_while_another_worker_holds_it(rule, fake):
    fake.answer(200, vector(sample(5, queue="mail")))
    RuleEvaluation.objects.filter(rule=rule).update(
        claimed_until=timezone.now() + timedelta(minutes=1), claim_token="other-worker"
    )

    assert evaluation.evaluate_claimed([rule.pk]) == []
    assert fake.requests == []
    assert rule.pk not in evaluation.due_rule_ids(timezone.now())


def test_an_expired_claim_is_taken_over(rule, fake):
    fake.answer(200, vector(sample(5, queue="mail")))
    RuleEvaluation.objects.filter(rule=rule).update(
        claimed_until=timezone.now() - timedelta(seconds=1), claim_token="dead-worker"
    )

    [outcome] = evaluation.evaluate_claimed([rule.pk])

    assert outcome.result == "ok"
    rule.refresh_from_db()
    assert rule.evaluation.claimed_until is None
    assert rule.evaluation.due_at > timezone.now()


def test_evaluation_state_writes_take_a_bounded_number_of_queries(
    org, source, fake, django_assert_max_num_queries
):
    rules = AlertRule.objects.bulk_create(
        AlertRule(
            organization=org,
            key=f"r{i}",
            name=f"r{i}",
            source=source,
            expr=f'queue_depth{{n="{i}"}}',
            op=">",
            threshold=3,
        )
        for i in range(30)
    )
    fake.answer(200, vector(sample(1, queue="mail")))  # nothing breaches

    # Constant in the number of rules: claim, read, lock, one executemany, health,
    # the circuit breaker's admission and record.
    with django_assert_max_num_queries(18):
        outcomes = evaluation.evaluate_claimed([r.pk for r in rules])

    assert len(outcomes) == 30
    assert (
        RuleEvaluation.objects.filter(
            rule__key__startswith="r", last_evaluated_at__isnull=False
        ).count()
        == 30
    )


def test_a_dead_source_is_asked_once_per_batch(org, source, fake):
    rules = [
        AlertRule.objects.create(
            organization=org, key=f"q{i}", name="q", source=source, expr=f"queue_depth > {i}"
        )
        for i in range(5)
    ]
    fake.reply = fake.raw(503, b"down", "text/plain")

    outcomes = evaluation.evaluate_claimed([r.pk for r in rules])

    assert [o.result for o in outcomes] == ["source_error"] * 5
    assert len(fake.requests) == 1
    assert all(
        row.state == "unknown"
        for row in RuleEvaluation.objects.filter(rule_id__in=[r.pk for r in rules])
    )


def test_one_broken_rule_does_not_stop_the_others(org, rule, fake):
    # Saved around clean(), e.g. by an older release: evaluation must survive it.
    broken = AlertRule.objects.create(
        organization=org,
        key="broken",
        name="broken",
        expr="alerts.firing",
        interval=timedelta(days=9000 * 365),  # now + this overflows a datetime
    )
    fake.answer(200, vector(sample(5, queue="mail")))

    outcomes = {o.rule_id: o.result for o in evaluation.evaluate_claimed([rule.pk, broken.pk])}

    assert outcomes == {rule.pk: "ok", broken.pk: "ok"}
    broken.refresh_from_db()
    assert broken.evaluation.due_at < timezone.now() + timedelta(days=2)
    assert Alert.objects.filter(rule=rule).exists()


def test_renaming_a_rule_keeps_its_open_alerts(fake, rule):
    fake.answer(200, vector(sample(5, queue="mail")))
    evaluate(rule)
    alert = Alert.objects.get(rule=rule)

    rule.key = "queue.depth.mail"
    rule.save()
    evaluate(rule)

    assert list(Alert.objects.filter(rule=rule).values_list("pk", "state")) == [
        (alert.pk, "firing")
    ]


def test_a_rule_already_evaluated_is_skipped_when_queued_again(rule, fake):
    fake.answer(200, vector(sample(1, queue="mail")))
    assert len(evaluation.evaluate_claimed([rule.pk], due_only=True)) == 1

    # A second task for the same tick (beat re-queued it under load) does nothing.
    assert evaluation.evaluate_claimed([rule.pk], due_only=True) == []
    assert len(fake.requests) == 1


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("interval", timedelta(days=2), "at most 1d"),
        ("for_duration", timedelta(days=31), "at most 30d"),
        ("keep_firing_for", timedelta(days=31), "at most 30d"),
        ("threshold", float("inf"), "finite"),
        ("labels", {"team": "a\x00b"}, "NUL"),
    ],
)
def test_rule_bounds_are_checked_at_save(org, field, value, message):
    from django.core.exceptions import ValidationError

    rule = AlertRule(
        organization=org, key="bounded", name="b", expr="alerts.firing", op=">", threshold=1
    )
    setattr(rule, field, value)
    with pytest.raises(ValidationError, match=message):
        rule.full_clean()


def test_an_unverified_rule_is_verified_by_its_first_successful_evaluation(fake, rule):
    AlertRule.objects.filter(pk=rule.pk).update(verification="unverified")
    fake.answer(200, vector(sample(1, queue="mail")))

    assert evaluate(rule).verification == "verified"


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ({"__name__": "x"}, "reserved"),
        ({"team": "x" * 2000}, "at most 1024"),
    ],
)
def test_rule_labels_are_bounded(org, labels, message):
    from django.core.exceptions import ValidationError

    rule = AlertRule(
        organization=org, key="labelled", name="l", expr="alerts.firing", labels=labels
    )
    with pytest.raises(ValidationError, match=message):
        rule.full_clean()


def test_a_duration_with_thousands_of_digits_is_refused_clearly():
    from controlplane.promql.durations import parse_duration

    with pytest.raises(ValueError, match="too long"):
        parse_duration("9" * 5000 + "s")


def test_a_rule_edited_during_its_evaluation_is_not_verified_by_the_old_expression(fake, rule):
    AlertRule.objects.filter(pk=rule.pk).update(verification="unverified")
    loaded = list(AlertRule.objects.filter(pk=rule.pk).select_related("evaluation", "source"))
    # Saved meanwhile with a new expression its source could not check.
    AlertRule.objects.filter(pk=rule.pk).update(expr="queue_depth * 2")

    evaluation.evaluate(loaded, timezone.now())

    rule.refresh_from_db()
    assert rule.verification == "unverified"
    evaluate(rule)  # the new expression runs: now it is verified
    assert rule.verification == "verified"


def test_a_rule_moved_to_another_source_is_not_verified_by_the_old_one(fake, rule):
    from controlplane.catalog.models import MetricSource

    AlertRule.objects.filter(pk=rule.pk).update(verification="unverified")
    loaded = list(AlertRule.objects.filter(pk=rule.pk).select_related("evaluation", "source"))
    # Moved meanwhile to a source that could not check it; the expression is the same.
    down = MetricSource.objects.create(
        organization=rule.organization, name="down", url="http://127.0.0.1:9"
    )
    AlertRule.objects.filter(pk=rule.pk).update(source=down)

    evaluation.evaluate(loaded, timezone.now())

    rule.refresh_from_db()
    assert rule.verification == "unverified"


def test_editing_a_rules_labels_reaches_its_open_alert(fake, rule):
    fake.answer(200, vector(sample(5, queue="mail")))
    evaluate(rule)
    alert = Alert.objects.get(rule=rule)
    assert alert.labels == {"queue": "mail"}

    rule.labels = {"team": "mail-ops", "queue": ""}
    rule.save()
    evaluate(rule)

    alert.refresh_from_db()
    assert alert.state == "firing"  # the same alert: its identity is the result's labels
    assert alert.labels == {"team": "mail-ops"}


def test_series_the_rule_labels_make_alike_are_a_bad_query_not_two_alerts(fake, rule):
    fake.answer(200, vector(sample(5, queue="mail"), sample(6, queue="jobs")))
    rule.labels = {"queue": "any"}
    rule.save()

    [outcome] = evaluation.evaluate_claimed([rule.pk])

    assert outcome.result == "bad_query"
    assert "once the rule's labels are applied" in RuleEvaluation.objects.get(rule=rule).last_error
    assert not Alert.objects.exists()


def test_a_stalled_source_is_asked_once_then_left_alone_until_its_backoff(org):
    # The rule's interval (1s) caps the query's timeout whatever the source's own (30s);
    # after that timeout the breaker keeps scheduled evaluations off the source.
    with BlackHole() as hole:
        stalled = MetricSource.objects.create(
            organization=org, name="stalled", url=hole.url, timeout=30
        )
        rule = AlertRule.objects.create(
            organization=org,
            key="stalled",
            name="stalled",
            source=stalled,
            expr="up",
            interval=timedelta(seconds=1),
        )
        errors = []
        for _ in range(3):
            RuleEvaluation.objects.filter(rule=rule).update(due_at=timezone.now())
            [outcome] = evaluation.evaluate_claimed([rule.pk], due_only=True)
            assert outcome.result == "source_error"
            errors.append(RuleEvaluation.objects.get(rule=rule).last_error)

        assert hole.connections == 1
    assert "within 1 s" in errors[0]  # the interval's 1 s, not the source's 30
    row = RuleEvaluation.objects.get(rule=rule)
    assert row.state == "unknown"
    assert "not asked: the source failed 1 time in a row" in row.last_error
    assert SourceHealth.objects.get(source=stalled).failing_since is not None


def test_a_source_that_answers_one_query_and_stalls_on_the_next_is_down(org, monkeypatch):
    # Answering the first expression of each batch must not keep a source off its breaker.
    from controlplane.promql.client import SourceTimeout

    source = MetricSource.objects.create(organization=org, name="flaky", url="http://10.0.0.1")
    rules = [
        AlertRule.objects.create(
            organization=org, key=f"flaky.{n}", name="f", source=source, expr=f"up * {n}"
        )
        for n in (1, 2)
    ]

    def half(rule, now, clients, timeouts):
        if rule.expr == "up * 1":
            return []
        raise SourceTimeout("did not answer within 1 s")

    monkeypatch.setattr(evaluation, "_query", half)
    evaluation.evaluate_claimed([r.pk for r in rules], due_only=False)

    health = SourceHealth.objects.get(source=source)
    assert health.failing_since is not None
    assert health.consecutive_failures == 1
    assert health.retry_at is not None


def test_evaluate_now_asks_each_source_briefly_and_stops_asking_when_out_of_time(
    org, settings, monkeypatch
):
    settings.PROMQL_CHECK_SECONDS = 1
    monkeypatch.setattr(evaluation, "INTERACTIVE_BUDGET", 0.5)
    with BlackHole() as first, BlackHole() as second:
        rules = []
        for n, hole in enumerate((first, second)):
            source = MetricSource.objects.create(
                organization=org, name=f"hole{n}", url=hole.url, timeout=30
            )
            rules.append(
                AlertRule.objects.create(
                    organization=org, key=f"hole.{n}", name="h", source=source, expr="up"
                )
            )

        evaluation.evaluate_claimed([r.pk for r in rules], interactive=True)

        asked = first.connections + second.connections
    errors = [RuleEvaluation.objects.get(rule=r).last_error for r in rules]
    assert asked == 1
    assert "within 1 s" in errors[0]  # the check's 1 s, not the source's 30
    assert "not asked: out of time for this request" in errors[1]
