"""The circuit breaker in front of metric sources: the decision as a table, then the
admission and the record against the database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from controlplane.catalog import circuit
from controlplane.catalog.circuit import Circuit, backoff, decide
from controlplane.catalog.models import MetricSource, SourceHealth

T0 = datetime(2026, 1, 1, tzinfo=UTC)
S = timedelta(seconds=1)


@pytest.mark.parametrize(
    ("failures", "wait"),
    [(0, 0 * S), (1, 5 * S), (2, 10 * S), (3, 20 * S), (4, 40 * S), (5, 60 * S), (50, 60 * S)],
)
def test_backoff_doubles_up_to_a_minute(failures, wait):
    assert backoff(failures) == wait


@pytest.mark.parametrize(
    ("state", "now", "verdict"),
    [
        (Circuit(), T0, "ask"),  # closed: every batch asks
        (Circuit(1, T0 + 5 * S), T0, "wait"),  # open: nobody asks
        (Circuit(1, T0 + 5 * S), T0 + 5 * S, "probe"),  # backoff over: one probe
        (Circuit(3, None), T0, "probe"),
    ],
)
def test_decide(state, now, verdict):
    assert decide(state, now) == verdict


@pytest.fixture
def sources(org, other_org):
    def make(organization, name):
        source = MetricSource.objects.create(
            organization=organization, name=name, url="http://10.0.0.1:9090"
        )
        SourceHealth.objects.create(source=source)
        return source

    return make(org, "a"), make(org, "b"), make(other_org, "c")


@pytest.mark.django_db
def test_a_failure_opens_the_circuit_and_an_answer_closes_it(sources):
    a, _, _ = sources
    circuit.record(a.pk, answered=False, now=T0)

    assert circuit.admit(a.pk, a.organization_id, 2.0, T0 + S).asked is False
    reason = circuit.admit(a.pk, a.organization_id, 2.0, T0 + S).reason
    assert "failed 1 time in a row" in reason
    assert "next try at 00:00:05 UTC" in reason

    probe = circuit.admit(a.pk, a.organization_id, 2.0, T0 + 5 * S)
    assert probe.asked
    # While the probe runs, the other batches of the source wait for its outcome.
    assert not circuit.admit(a.pk, a.organization_id, 2.0, T0 + 6 * S).asked

    circuit.record(a.pk, answered=True, now=T0 + 7 * S)
    health = SourceHealth.objects.get(source=a)
    assert (health.consecutive_failures, health.retry_at, health.probe_until) == (0, None, None)
    assert circuit.admit(a.pk, a.organization_id, 2.0, T0 + 7 * S).asked


@pytest.mark.django_db
def test_each_failed_probe_doubles_the_wait(sources):
    a, _, _ = sources
    for n in range(1, 4):
        circuit.record(a.pk, answered=False, now=T0)
        health = SourceHealth.objects.get(source=a)
        assert health.consecutive_failures == n
        assert health.retry_at == T0 + backoff(n)
        assert health.probe_until is None


@pytest.mark.django_db
def test_one_probe_at_a_time_per_organisation(sources):
    a, b, c = sources
    for source in sources:
        circuit.record(source.pk, answered=False, now=T0)
    later = T0 + 10 * S

    assert circuit.admit(a.pk, a.organization_id, 2.0, later).asked
    held = circuit.admit(b.pk, b.organization_id, 2.0, later)
    assert not held.asked
    assert "probing its organisation's sources" in held.reason
    # Another organisation's dead source is probed on its own account.
    assert circuit.admit(c.pk, c.organization_id, 2.0, later).asked
    # A probe whose worker died frees the slot once its hold has run out.
    expired = later + 2 * S + circuit.PROBE_MARGIN + S
    assert circuit.admit(b.pk, b.organization_id, 2.0, expired).asked


@pytest.mark.django_db
def test_a_healthy_source_costs_no_write(sources, django_assert_num_queries):
    a, _, _ = sources
    with django_assert_num_queries(1):  # the conditional UPDATE matches no row
        circuit.record(a.pk, answered=True, now=T0)
