"""The SLO evaluator's bookkeeping, without a real Prometheus: claims and leases, the
beat tick's batches, what an evaluation writes (and leaves alone), and the pruning of
the history it keeps. The maths against a real Prometheus is
tests/integration/test_slo_evaluation.py's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from controlplane.catalog.models import MetricSource
from controlplane.slo import evaluation, history, tasks
from controlplane.slo.models import SLO, SLOEvaluation, SLOSnapshot
from tests.factories import make_slo
from tests.races import race
from tests.services import require_postgresql

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
LEASE = evaluation.CLAIM_LEASE


@pytest.fixture
def source(org, fake):
    """A stand-in Prometheus answering an empty vector: every evaluation is no_data,
    and its outcome is still written (status, snapshot, schedule)."""
    return MetricSource.objects.create(organization=org, name="fake", url=fake.url, timeout=5)


def slos(org, source, count: int, **fields) -> list[SLO]:
    return [make_slo(org, f"slo-{n}", source=source, **fields) for n in range(count)]


def holders() -> dict[int, str]:
    return dict(SLOEvaluation.objects.exclude(claim_token="").values_list("slo_id", "claim_token"))


# --- claims and leases ----------------------------------------------------------------------


@pytest.mark.django_db
def test_two_claims_never_take_the_same_slo_until_the_lease_runs_out(org, source):
    ids = [slo.pk for slo in slos(org, source, 4)]
    now = timezone.now()

    first, taken = evaluation.claim(ids[:3], now)
    second, taken_too = evaluation.claim(ids, now)

    assert (taken, taken_too) == (3, 1)
    assert holders() == {**dict.fromkeys(ids[:3], first), ids[3]: second}
    assert evaluation.claim(ids, now + LEASE - MINUTE)[1] == 0
    assert evaluation.due_slo_ids(now + LEASE - MINUTE) == []
    # A worker killed while holding them: once the lease has run out they go out again.
    later, retaken = evaluation.claim(ids, now + LEASE + MINUTE)
    assert retaken == 4
    assert set(holders().values()) == {later}


@pytest.mark.django_db
def test_a_disabled_slo_or_one_not_yet_due_is_neither_due_nor_claimed(org, source):
    due, disabled, later = slos(org, source, 3)
    disabled.enabled = False
    disabled.save()
    now = timezone.now()
    SLOEvaluation.objects.filter(slo=later).update(due_at=now + HOUR)

    assert evaluation.due_slo_ids(now) == [due.pk]
    assert evaluation.claim([due.pk, disabled.pk, later.pk], now, due_only=True)[1] == 1
    assert set(holders()) == {due.pk}
    # A worker asked for the not-yet-due one by name may take it; never the disabled one.
    assert evaluation.claim([disabled.pk, later.pk], now)[1] == 1
    assert set(holders()) == {due.pk, later.pk}


@pytest.mark.django_db
def test_evaluating_releases_the_claim_and_only_a_scheduled_evaluation_moves_the_schedule(
    org, source
):
    slo = make_slo(org, "api", source=source)
    due_at = SLOEvaluation.objects.get(slo=slo).due_at
    at = datetime(2026, 5, 1, 12, tzinfo=UTC)

    [outcome] = evaluation.evaluate_claimed([slo.pk], at=at)

    row = SLOEvaluation.objects.get(slo=slo)
    assert (outcome.result, row.status, row.evaluated_at) == ("ok", "no_data", at)
    assert (row.claim_token, row.claimed_until) == ("", None)
    assert row.due_at == due_at  # a fixed-time evaluation leaves the schedule alone

    before = timezone.now()
    evaluation.evaluate_claimed([slo.pk])
    row.refresh_from_db()
    assert before + evaluation.interval() <= row.due_at <= timezone.now() + evaluation.interval()
    assert evaluation.due_slo_ids(timezone.now()) == []


@pytest.mark.django_db
def test_an_slo_held_by_another_worker_is_not_evaluated(org, source):
    slo = make_slo(org, "api", source=source)
    theirs, _ = evaluation.claim([slo.pk], timezone.now())

    assert evaluation.evaluate_claimed([slo.pk]) == []

    row = SLOEvaluation.objects.get(slo=slo)
    assert (row.evaluated_at, row.claim_token) == (None, theirs)
    assert not SLOSnapshot.objects.exists()


@pytest.mark.django_db
def test_an_slo_disabled_or_deleted_while_it_was_measured_is_left_alone(org, source):
    disabled, deleted, kept = slos(org, source, 3)
    loaded = list(SLO.objects.filter(pk__in=[disabled.pk, deleted.pk, kept.pk]).order_by("pk"))
    token, _ = evaluation.claim([slo.pk for slo in loaded], timezone.now())
    # Between the measurement and the write: an edit disables one, another goes.
    SLO.objects.filter(pk=disabled.pk).update(enabled=False)
    SLO.objects.filter(pk=deleted.pk).delete()

    outcomes = evaluation.evaluate(loaded, timezone.now(), token=token)

    assert [(o.slo_id, o.result) for o in outcomes] == [
        (disabled.pk, "retired"),
        (deleted.pk, "retired"),
        (kept.pk, "ok"),
    ]
    assert SLOEvaluation.objects.get(slo=disabled).evaluated_at is None
    assert list(SLOSnapshot.objects.values_list("slo_id", flat=True)) == [kept.pk]


@pytest.mark.django_db
def test_ensure_evaluations_gives_every_slo_its_row_once(org, source):
    made = SLO.objects.bulk_create(
        [
            SLO(
                organization=org, slug=f"bulk-{n}", name="b", source=source, objective=99, total="x"
            )
            for n in range(3)
        ]
    )
    ids = [slo.pk for slo in made]

    assert evaluation.ensure_evaluations(ids[:1]) == 1
    assert evaluation.ensure_evaluations() == 2
    assert evaluation.ensure_evaluations() == 0
    assert set(SLOEvaluation.objects.values_list("slo_id", flat=True)) == set(ids)
    assert set(evaluation.due_slo_ids(timezone.now())) == set(ids)


@pytest.mark.django_db
def test_beat_tick_queues_each_due_slo_once_in_batches_of_one_source(
    org, source, fake, monkeypatch
):
    other = MetricSource.objects.create(organization=org, name="other", url=fake.url, timeout=5)
    first = slos(org, source, 3)
    second = [make_slo(org, f"other-{n}", source=other) for n in range(2)]
    SLO.objects.filter(pk=second[0].pk).update(enabled=False)
    queued: list[tuple[list[int], str]] = []
    monkeypatch.setattr(
        tasks.evaluate_slos, "delay", lambda ids, token: queued.append((ids, token))
    )
    monkeypatch.setattr(tasks, "BATCH_SIZE", 2)

    assert tasks.evaluate_due_slos() == 4
    # The next tick, before any worker ran: everything due is leased already.
    assert tasks.evaluate_due_slos() == 0

    batches = sorted(ids for ids, _ in queued)
    assert batches == sorted([[first[0].pk, first[1].pk], [first[2].pk], [second[1].pk]])
    # A worker takes each message: each SLO evaluated once, its lease given back.
    for ids, token in queued:
        tasks.evaluate_slos(ids, token=token)
    assert SLOSnapshot.objects.count() == 4
    assert holders() == {}
    assert SLOEvaluation.objects.filter(evaluated_at__isnull=False).count() == 4


@pytest.mark.django_db(transaction=True)
def test_claims_racing_on_postgresql_share_the_slos_without_overlap(org, source):
    require_postgresql()
    ids = [slo.pk for slo in slos(org, source, 30)]
    now = timezone.now()
    results = race(6, lambda: evaluation.claim(ids, now))
    assert sum(taken for _, taken in results) == len(ids)
    held = holders()
    assert set(held) == set(ids)
    for token, taken in results:
        assert sum(1 for t in held.values() if t == token) == taken


# --- history, pruned by the evaluation ---------------------------------------------------------

# Midnight UTC: the bands' edges fall on whole hours and days.
NOW = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.mark.django_db
def test_sixty_days_of_five_minute_snapshots_are_thinned_by_the_next_evaluation(org, source):
    slo = make_slo(org, "api", source=source)
    SLOSnapshot.objects.bulk_create(
        [
            SLOSnapshot(slo=slo, at=NOW - k * 5 * MINUTE, status="ok", sli=1.0)
            for k in range(1, 60 * 288 + 1)
        ],
        batch_size=2000,
    )

    evaluation.evaluate_claimed([slo.pk], at=NOW)

    kept = list(SLOSnapshot.objects.filter(slo=slo).order_by("at").values_list("at", flat=True))
    # The last 48 h whole: 576 five-minute snapshots and this evaluation's. From 48 h to
    # 35 days, the first of each UTC hour: the hours from NOW - 840 h to NOW - 49 h, 792.
    # From 35 to 60 days, the first of each UTC day: NOW - 60 d to NOW - 36 d, 25.
    assert len(kept) == 577 + 792 + 25
    assert len(kept) <= history.most_kept(5 * MINUTE)
    assert kept[0] == NOW - 60 * DAY
    assert kept[-1] == NOW
    hourly = [at for at in kept if NOW - 35 * DAY <= at < NOW - 48 * HOUR]
    assert all(at.minute == 0 for at in hourly)

    # Within the same hour the next evaluation only adds its own; the next hour prunes.
    evaluation.evaluate_claimed([slo.pk], at=NOW + 30 * MINUTE)
    assert SLOSnapshot.objects.filter(slo=slo).count() == len(kept) + 1
    evaluation.evaluate_claimed([slo.pk], at=NOW + 3 * HOUR)
    # Three hours on: the 36 snapshots from NOW - 48 h to NOW - 45 h 05 leave the whole
    # band for the hourly one, which keeps the first of each of their 3 hours; the 3
    # hourly ones from NOW - 35 d to NOW - 35 d + 2 h reach the daily band, which keeps
    # the first of their day. Two evaluations added theirs.
    assert SLOSnapshot.objects.filter(slo=slo).count() == len(kept) + 2 - (36 - 3) - (3 - 1)
