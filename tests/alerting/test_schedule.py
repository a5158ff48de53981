"""Fixed slots: the next evaluation is the previous slot plus the interval."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from controlplane.alerting import evaluation, schedule
from controlplane.alerting.models import AlertRule, RuleEvaluation
from controlplane.alerting.tasks import evaluate_due_rules
from tests.factories import make_rule

T0 = datetime(2026, 1, 1, tzinfo=UTC)
S = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)


@pytest.mark.parametrize(
    ("finished", "expected"),
    [
        (T0 + 0.2 * S, T0 + MINUTE),  # a quick evaluation: the next slot, not now + 60 s
        (T0 + 59 * S, T0 + MINUTE),  # a slow one still keeps time
        (T0 + MINUTE, T0 + 2 * MINUTE),  # finished on the next slot: that one has passed
        (T0 + 61 * S, T0 + 2 * MINUTE),  # a missed slot is skipped, not run late
        (T0 + 10 * MINUTE + S, T0 + 11 * MINUTE),  # many missed: no bunching
        (T0 - 5 * S, T0 + MINUTE),  # a clock behind the slot: the next one
    ],
)
def test_next_slot(finished, expected):
    assert schedule.next_slot(T0, MINUTE, finished) == expected


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (T0 - S, T0),  # not yet due: its own slot
        (T0, T0),
        (T0 + 0.3 * S, T0),  # served a moment late: still that slot
        (T0 + MINUTE + S, T0 + MINUTE),  # one slot missed: the newer one is served
        (T0 + 10 * MINUTE + 5 * S, T0 + 10 * MINUTE),  # a backlog: the latest, not the oldest
    ],
)
def test_current_slot(now, expected):
    assert schedule.current_slot(T0, MINUTE, now) == expected


@pytest.mark.django_db
def test_after_a_backlog_for_counts_from_the_latest_slot_not_a_stale_one(org):
    # Workers down for ten minutes: the rule's condition, true all along, must not be
    # found "pending since ten minutes ago" and fire at once; it goes pending at the
    # slot served and fires `for` later, as Prometheus does after a stall.
    rule = make_rule(org, interval=MINUTE, for_duration=5 * MINUTE)
    stale = timezone.now() - 10 * MINUTE - 5 * S
    RuleEvaluation.objects.filter(rule=rule).update(due_at=stale)

    evaluation.evaluate_claimed([rule.pk], due_only=True)

    row = RuleEvaluation.objects.get(rule=rule)
    assert row.slot_at == stale + 10 * MINUTE
    assert row.due_at == stale + 11 * MINUTE
    assert row.state == "pending"
    assert row.instances  # alerts.firing: one series per severity, each breaching
    assert {i["active_since"] for i in row.instances} == {(stale + 10 * MINUTE).isoformat()}
    assert not rule.alerts.exists()


def test_next_slot_refuses_a_non_positive_interval():
    with pytest.raises(ValueError, match="positive"):
        schedule.next_slot(T0, timedelta(0), T0)


@pytest.mark.parametrize(
    ("slot", "started", "lag"),
    [(None, T0, 0.0), (T0, T0 + 0.25 * S, 0.25), (T0, T0 - S, 0.0)],
)
def test_lag(slot, started, lag):
    assert schedule.lag(slot, started) == lag


@pytest.mark.django_db
def test_an_evaluation_moves_the_rule_to_its_next_slot(org):
    rule = make_rule(org, interval=10 * S)
    slot = timezone.now() - 3 * S  # due three seconds ago
    RuleEvaluation.objects.filter(rule=rule).update(due_at=slot)

    evaluation.evaluate_claimed([rule.pk], due_only=True)

    row = RuleEvaluation.objects.get(rule=rule)
    assert row.slot_at == slot
    assert row.due_at == slot + 10 * S


@pytest.mark.django_db
def test_the_tick_queues_a_due_rule_once_until_it_is_evaluated(org, monkeypatch):
    queued = []
    monkeypatch.setattr(
        "controlplane.alerting.tasks.evaluate_rules.delay",
        lambda ids, token: queued.append((ids, token)),
    )
    rule = make_rule(org)
    AlertRule.objects.exclude(pk=rule.pk).delete()  # the built-in rules of a new organisation

    assert evaluate_due_rules() == 1
    assert evaluate_due_rules() == 0  # still queued: the next tick leaves it alone

    [(ids, token)] = queued
    assert ids == [rule.pk]
    assert RuleEvaluation.objects.get(rule=rule).claim_token == token
    [outcome] = evaluation.evaluate_claimed(ids, token=token)
    assert outcome.result == "ok"
    row = RuleEvaluation.objects.get(rule=rule)
    assert row.claim_token == ""
    assert row.due_at > timezone.now()


@pytest.mark.django_db
def test_a_stale_task_from_a_lease_that_was_given_away_evaluates_nothing(org, monkeypatch):
    monkeypatch.setattr("controlplane.alerting.tasks.evaluate_rules.delay", lambda *a, **k: None)
    rule = make_rule(org)
    AlertRule.objects.exclude(pk=rule.pk).delete()
    stale = evaluation.claim([rule.pk], timezone.now())
    RuleEvaluation.objects.filter(rule=rule).update(claimed_until=timezone.now() - S)
    assert evaluate_due_rules() == 1  # the lease ran out: queued again, under a new token

    assert evaluation.evaluate_claimed([rule.pk], token=stale) == []


@pytest.mark.django_db
def test_for_counts_whole_intervals_at_the_slots_whatever_each_task_s_lag(org):
    # Prometheus evaluates at the scheduled timestamp: a task that starts 0.4 s late
    # once and 0.1 s late five slots on must still fire after exactly `for`.
    rule = make_rule(org, op=">=", threshold=0, for_duration=5 * MINUTE, interval=MINUTE)
    base = timezone.now() - timedelta(hours=1)
    lags = [0.4, 0.1, 0.3, 0.05, 0.2, 0.1]
    states = []
    for k, lag in enumerate(lags):
        RuleEvaluation.objects.filter(rule=rule).update(due_at=base + k * MINUTE)
        rule.refresh_from_db()
        evaluation.evaluate([rule], base + k * MINUTE + lag * S, on_slots=True)
        states.append(RuleEvaluation.objects.get(rule=rule).state)

    assert states == ["pending"] * 5 + ["firing"]


@pytest.mark.django_db
def test_disabling_parks_the_schedule_and_enabling_brings_it_back(org):
    rule = make_rule(org)
    rule.enabled = False
    rule.save()
    assert RuleEvaluation.objects.get(rule=rule).due_at == evaluation.PARKED
    assert rule.pk not in evaluation.due_rule_ids(timezone.now() + timedelta(days=365))

    rule.enabled = True
    rule.save()
    assert RuleEvaluation.objects.get(rule=rule).due_at <= timezone.now()


@pytest.mark.django_db
def test_a_shortened_interval_takes_effect_now(org):
    rule = make_rule(org, interval=timedelta(days=1))
    RuleEvaluation.objects.filter(rule=rule).update(due_at=timezone.now() + timedelta(hours=20))

    rule.interval = MINUTE
    rule.save()

    assert RuleEvaluation.objects.get(rule=rule).due_at <= timezone.now()
