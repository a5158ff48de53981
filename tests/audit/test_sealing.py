"""Sealing: events linked into their chain right after the commit that recorded them,
once per chain per transaction, by one sealer at a time, with beat's backstop for a
process that died in between; and what `record()` stores verifies once read back."""

from __future__ import annotations

import datetime
import math
import zoneinfo
from typing import Any

import pytest
from django.db import DatabaseError, connection, transaction
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from controlplane.audit import chain, recorder, sealing
from controlplane.audit.models import AuditEvent, ChainHead
from controlplane.audit.tasks import seal_events
from controlplane.catalog.models import Organization, Service
from tests.audit.helpers import (
    events_of,
    forged,
    raw_insert,
    record_some,
    seal_dropped,
    sealed_chain,
    verify,
)
from tests.races import race
from tests.services import require_postgresql


def chain_seqs(chain_id: int) -> list[int | None]:
    return list(
        AuditEvent.objects.filter(chain=chain_id).order_by("seq").values_list("seq", flat=True)
    )


def assert_whole(chain_id: int) -> None:
    """Every event of the chain sealed, numbered 1..n without a gap, and verified."""
    seqs = chain_seqs(chain_id)
    assert seqs == list(range(1, len(seqs) + 1))
    events = [
        chain.Sealed(e.pk, e.seq, e.prev_hash, e.hash, e.mac, e.content())
        for e in AuditEvent.objects.filter(chain=chain_id).order_by("seq")
    ]
    head = ChainHead.objects.get(chain=chain_id)
    report = chain.verify(chain_id, events, recorder.chain_key(), (head.seq, head.hash))
    assert report.ok, report.finding
    assert head.seq == len(seqs)


# --- right after the commit ----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_committed_change_is_sealed_right_after_its_commit():
    organization = Organization.objects.create(slug="acme", name="Acme")
    service = Service.objects.create(organization=organization, slug="api", name="API")
    with transaction.atomic():
        service.name = "Public API"
        service.save()
        record_some(organization, 3)

    assert [event.action for event in events_of(service)] == ["created", "updated"]
    assert all(event.seq is not None for event in events_of(service))
    assert_whole(organization.pk)


@pytest.mark.django_db(transaction=True)
def test_one_seal_per_chain_per_transaction():
    acme = Organization.objects.create(slug="acme", name="Acme")
    globex = Organization.objects.create(slug="globex", name="Globex")

    with transaction.atomic():
        record_some(acme, 3)
        record_some(globex, 2)
        record_some(acme, 1)
        seals = [c for _, c, _ in connection.run_on_commit if isinstance(c, recorder._Seal)]

    assert sorted(seal.chain for seal in seals) == sorted([acme.pk, globex.pk])
    assert_whole(acme.pk)
    assert_whole(globex.pk)


@pytest.mark.django_db(transaction=True)
def test_a_savepoint_rolled_back_takes_its_events_and_never_the_seal_of_the_rest(org):
    sealed_before = len(chain_seqs(org.pk))

    with transaction.atomic():
        # The first event of the chain in this transaction is in a savepoint rolled back:
        # its seal goes with it, and the next event must schedule its own.
        with pytest.raises(RuntimeError), transaction.atomic():  # noqa: PT012
            record_some(org, 1, action="rolled back")
            raise RuntimeError("the inner block failed")
        [kept] = record_some(org, 1, action="kept")
        # An event in a savepoint rolled back after the seal was scheduled outside it.
        with pytest.raises(RuntimeError), transaction.atomic():  # noqa: PT012
            record_some(org, 1, action="rolled back")
            raise RuntimeError("the inner block failed")

    assert not AuditEvent.objects.filter(action="rolled back").exists()
    assert AuditEvent.objects.get(pk=kept.pk).seq == sealed_before + 1
    assert_whole(org.pk)


@pytest.mark.django_db(transaction=True)
def test_a_seal_failing_after_the_commit_keeps_the_change_and_the_callbacks_after_it(
    org, monkeypatch, caplog
):
    def gone(chain_id: int, key: bytes | None = None) -> int:
        raise DatabaseError("the database went away")

    monkeypatch.setattr(sealing, "seal", gone)
    ran = []
    with transaction.atomic():
        [event] = record_some(org, 1)
        transaction.on_commit(lambda: ran.append("the next callback"))

    assert ran == ["the next callback"]
    assert AuditEvent.objects.get(pk=event.pk).seq is None
    assert f"Error calling the seal of audit chain {org.pk} in on_commit()" in caplog.text
    monkeypatch.undo()
    assert seal_events.apply().get() >= 1
    assert AuditEvent.objects.get(pk=event.pk).seq is not None


# --- one sealer at a time ------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_two_sealers_racing_on_one_chain_make_one_contiguous_chain(org, monkeypatch):
    require_postgresql()
    monkeypatch.setattr(sealing, "BATCH", 7)  # several batches each, interleaving
    with seal_dropped():
        record_some(org, 60)
    waiting = AuditEvent.objects.filter(chain=org.pk, seq=None).count()

    counts = race(2, lambda: sealing.seal(org.pk))

    assert sum(counts) == waiting
    assert_whole(org.pk)


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_writers_committing_at_once_each_sealing_after_commit_make_one_chain(org):
    require_postgresql()

    def write() -> int:
        total = 0
        for _ in range(5):
            with transaction.atomic():
                total += len(record_some(org, 3))
        return total

    written = race(4, write)

    assert sum(written) == 60
    assert_whole(org.pk)


# --- the backstop --------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_beat_task_seals_what_a_process_that_died_left(org, other_org):
    with seal_dropped():
        record_some(org, 3)
        record_some(other_org, 2)
        record_some(None, 1)
    waiting = AuditEvent.objects.filter(seq=None).count()
    assert waiting >= 6

    result = seal_events.apply()

    assert result.get() == waiting
    assert not AuditEvent.objects.filter(seq=None).exists()
    for chain_id in (org.pk, other_org.pk, 0):
        assert_whole(chain_id)
    assert seal_events.apply().get() == 0


@pytest.mark.django_db
def test_forged_rows_are_never_sealed_and_do_not_hold_up_the_events_behind_them(org, monkeypatch):
    monkeypatch.setattr(sealing, "BATCH", 2)
    sealed = sealed_chain(org)
    macs = [f"{n:064x}" for n in range(4)] + ["é" * 64]  # a MAC may be any text
    intruders = [raw_insert(**forged(sealed[-1], mac=mac)) for mac in macs]
    genuine = record_some(org, 3)

    assert sealing.seal(org.pk) == 3
    assert sealing.seal_all() == 0

    assert [AuditEvent.objects.get(pk=e.pk).seq for e in intruders] == [None] * 5
    assert [AuditEvent.objects.get(pk=e.pk).seq for e in genuine] == [
        len(sealed) + 1,
        len(sealed) + 2,
        len(sealed) + 3,
    ]
    out, error = verify("--org", org.slug)
    assert f"event #{intruders[0].pk}: inserted: not sealed" in out
    assert error is not None


@pytest.mark.django_db
def test_a_seal_goes_through_every_batch(org, monkeypatch):
    monkeypatch.setattr(sealing, "BATCH", 3)
    record_some(org, 10)
    waiting = AuditEvent.objects.filter(chain=org.pk, seq=None).count()

    assert sealing.seal(org.pk) == waiting
    assert sealing.seal(org.pk) == 0
    assert_whole(org.pk)


# --- what is stored is what the MAC covers -------------------------------------------------

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")

# Text as the databases store it: PostgreSQL refuses NUL, and no database takes a lone
# surrogate (nor can a change holding one be saved in the first place).
stored_text = st.text(
    st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=30
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | stored_text,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(stored_text, children, max_size=4)
    ),
    max_leaves=12,
)
times = st.datetimes(
    min_value=datetime.datetime(1970, 1, 2),
    max_value=datetime.datetime(2200, 1, 1),
    timezones=st.sampled_from([datetime.UTC, BERLIN, zoneinfo.ZoneInfo("America/St_Johns")]),
)


def read_back(event: AuditEvent) -> AuditEvent:
    return AuditEvent.objects.get(pk=event.pk)


@pytest.mark.django_db
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(diff=st.dictionaries(stored_text, json_values, max_size=5), at=st.none() | times)
@example(diff={"big": 2**70, "huge float": 1e16, "max": 1.7976931348623157e308}, at=None)
@example(diff={"negative zero": -0.0, "tiny": 5e-324, "small": 1.5e-10, "two": 2.0}, at=None)
@example(diff={"name": {"from": "Zürich ✓", "to": "東京 🚨 \u200b"}, "n": [[{"a": None}]]}, at=None)
@example(
    diff={"when": datetime.datetime(2026, 1, 1, tzinfo=BERLIN), "why": ("a", "b")},
    at=datetime.datetime(2026, 7, 1, 12, 0),  # naive: in TIME_ZONE (UTC here)
)
def test_what_record_stores_comes_back_as_its_mac_covers_it(org, diff: dict[str, Any], at):
    event = recorder.record(
        "updated", organization_id=org.pk, object_type="catalog.service", diff=diff, at=at
    )
    stored = read_back(event)

    assert chain.content_mac(recorder.chain_key(), stored.content()) == stored.mac == event.mac
    assert stored.content() == event.content()
    if at is not None:
        # As an instant: a wall time in a DST gap never equals one of another zone.
        expected = at if at.tzinfo else at.replace(tzinfo=datetime.UTC)
        assert stored.at == expected.astimezone(datetime.UTC)
    assert sealing.seal(org.pk) >= 1
    assert read_back(event).seq is not None


@pytest.mark.django_db
def test_floats_are_stored_in_the_form_postgresql_gives_back(org):
    assert recorder.stored_form({"a": 1e16, "b": -0.0, "c": 0.5, "d": [1e300], "e": 2**70}) == {
        "a": 10_000_000_000_000_000,
        "b": 0.0,
        "c": 0.5,
        "d": [10**300],
        "e": 2**70,
    }
    assert recorder.stored_form({"nan": math.nan}) == {"nan": "nan"}
    event = recorder.record(
        "updated", organization_id=org.pk, object_type="x.y", diff={"a": 1e16, "b": -0.0}
    )
    stored = read_back(event)

    assert stored.diff == {"a": 10_000_000_000_000_000, "b": 0.0}
    assert chain.content_mac(recorder.chain_key(), stored.content()) == stored.mac


@pytest.mark.django_db
def test_a_naive_time_is_taken_in_time_zone_and_stored_in_utc(org, settings):
    settings.TIME_ZONE = "Europe/Berlin"
    event = recorder.record(
        "updated",
        organization_id=str(org.pk),
        object_type="x.y",
        at=datetime.datetime(2026, 7, 1, 12, 0),
    )
    stored = read_back(event)

    assert stored.at == datetime.datetime(2026, 7, 1, 10, 0, tzinfo=datetime.UTC)
    assert event.content()["at"] == "2026-07-01T10:00:00+00:00" == stored.content()["at"]
    assert (stored.chain, stored.organization_id) == (org.pk, org.pk)
    assert chain.content_mac(recorder.chain_key(), stored.content()) == stored.mac
