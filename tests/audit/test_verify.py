"""`manage.py audit_verify` on the real database: a chain tampered with by someone with
the database owner's rights (raw SQL, the PostgreSQL trigger switched off for their
own transaction) but without the chain key, reported with the first bad event."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from controlplane.audit import chain, recorder, sealing
from controlplane.audit.management.commands import audit_verify
from controlplane.audit.models import AuditEvent, ChainHead
from tests.audit.helpers import (
    TABLE,
    forged,
    raw_delete,
    raw_insert,
    raw_update,
    record_some,
    retention_delete,
    seal_dropped,
    sealed_chain,
    status,
    verify,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def trail(org):
    """acme's chain, sealed: the events of its creation, then 5 about services."""
    record_some(org, 5)
    return sealed_chain(org)


def ok(organization_line: str, count: int, first: int = 1, pending: int = 0) -> str:
    line = f"{organization_line}: ok: {count} event{'' if count == 1 else 's'}"
    if count:
        line += f", sequence {first}..{first + count - 1}"
    if pending:
        line += f" (and {pending} recorded in the last two minutes, not sealed yet)"
    return line


def test_a_secret_key_rotation_keeps_the_trail_once_its_derived_key_is_pinned(trail, org, settings):
    settings.AUDIT_CHAIN_KEY = ""
    derived = recorder.derived_chain_key()
    assert len(derived) == 64
    assert recorder.chain_key() == derived.encode()

    settings.SECRET_KEY = "another-secret-key-after-the-rotation-000000000"
    out, error = verify("--org", "acme")
    assert status(error) == 1, "sealed under the old key, it no longer verifies"
    assert "altered" in out or "inserted" in out

    settings.AUDIT_CHAIN_KEY = derived
    out, error = verify("--org", "acme")
    assert error is None, out


def test_intact_chains_are_reported_ok_each_with_its_range(trail, org, other_org):
    record_some(None, 2)
    sealed_chain(None)
    globex = len(sealed_chain(other_org))

    out, error = verify()

    assert error is None, out
    assert out.splitlines() == [
        ok("no organisation (chain 0)", 2),
        ok(f"acme (chain {org.pk})", len(trail)),
        ok(f"globex (chain {other_org.pk})", globex),
    ]
    assert [event.seq for event in trail] == list(range(1, len(trail) + 1))
    assert [event.action for event in trail[-5:]] == ["updated"] * 5


def test_a_chain_of_pending_events_only_and_an_empty_chain_0_are_ok(org):
    # In this test's transaction, never committed, the creation of acme is not sealed.
    created = AuditEvent.objects.filter(chain=org.pk, seq=None).count()

    out, error = verify()

    assert error is None
    assert created >= 1
    assert out.splitlines() == [
        ok("no organisation (chain 0)", 0),
        ok(f"acme (chain {org.pk})", 0, pending=created),
    ]


@pytest.mark.parametrize(
    ("column", "changed"),
    [
        ("object_label", lambda value: value[:-1] + chr(ord(value[-1]) ^ 1)),
        ("actor", lambda value: "user:p_" + "0" * 16),
        ("diff", lambda value: {**value, "name": {"from": "old 2", "to": "new 3"}}),
        ("at", lambda value: value + datetime.timedelta(microseconds=1)),
        ("organization_id", lambda value: None),
    ],
)
def test_one_changed_value_is_reported_as_altered_with_its_event(trail, org, column, changed):
    target = trail[-3]
    raw_update(target, **{column: changed(getattr(target, column))})

    out, error = verify()

    stored = AuditEvent.objects.get(pk=target.pk)
    assert getattr(stored, column) == changed(getattr(target, column))
    assert out.splitlines()[1] == (
        f"acme (chain {org.pk}): event #{target.pk} (sequence {target.seq}): altered: "
        "its content was changed after it was sealed"
    )
    assert status(error) == 1
    assert str(error) == "the audit trail has a problem in 1 of 2 chains"


def test_a_removed_middle_event_is_reported_at_the_event_after_the_gap(trail, org):
    before, gone, after = trail[-4:-1]
    raw_delete(gone)

    out, error = verify("--org", "acme")

    assert out == (
        f"acme (chain {org.pk}): event #{after.pk} (sequence {after.seq}): removed: "
        f"sequence {gone.seq} missing after event #{before.pk}\n"
    )
    assert status(error) == 1


def test_a_removed_first_event_is_reported(trail, org):
    raw_delete(trail[0])

    out, error = verify("--org", "acme")

    assert out == (
        f"acme (chain {org.pk}): event #{trail[1].pk} (sequence 2): removed: the chain starts "
        "at sequence 2 and no receipt says events 1 to 1 were purged\n"
    )
    assert status(error) == 1


def test_a_removed_last_event_is_reported_from_the_chain_head(trail, org):
    last = len(trail)
    raw_delete(trail[-1])

    out, error = verify("--org", "acme")

    assert out == (
        f"acme (chain {org.pk}): the chain (sequence {last}): removed: sequence {last} missing "
        f"at the end, after event #{trail[-2].pk}: the chain was sealed up to {last}\n"
    )
    assert status(error) == 1


def test_an_event_inserted_with_a_made_up_mac_and_hash_is_reported(trail, org):
    last = trail[-1]
    seq = last.seq + 1
    intruder = raw_insert(**forged(last, seq=seq, prev_hash=last.hash, hash="e1" * 32))

    out, error = verify("--org", "acme")

    assert out == (
        f"acme (chain {org.pk}): event #{intruder.pk} (sequence {seq}): inserted: neither its "
        "content nor its link verifies with the key: written without it\n"
    )
    assert status(error) == 1


def test_an_event_inserted_unsealed_is_reported_at_once_and_never_sealed(trail, org):
    intruder = raw_insert(**forged(trail[-1]))

    assert sealing.seal(org.pk) == 0
    out, error = verify("--org", "acme")

    assert AuditEvent.objects.get(pk=intruder.pk).seq is None
    assert out == (
        f"acme (chain {org.pk}): event #{intruder.pk}: inserted: not sealed, and its content "
        "does not match its MAC: written without the key, so the sealer leaves it out\n"
    )
    assert status(error) == 1


def test_an_event_left_unsealed_is_pending_for_two_minutes_then_a_problem(trail, org):
    with seal_dropped():
        [fresh] = record_some(org, 1)
    with seal_dropped():
        [stale] = record_some(org, 1, at=timezone.now() - datetime.timedelta(seconds=150))

    out, error = verify("--org", "acme")

    assert out.startswith(
        f"acme (chain {org.pk}): event #{stale.pk}: unsealed: recorded 3 minutes ago"
    )
    assert "the sealer is lagging or stopped" in out
    assert status(error) == 1
    assert AuditEvent.objects.get(pk=fresh.pk).seq is None

    sealing.seal(org.pk)
    out, error = verify("--org", "acme")
    assert (out, error) == (ok(f"acme (chain {org.pk})", len(trail) + 2) + "\n", None)


def test_events_recorded_in_the_last_two_minutes_are_pending_not_an_error(trail, org):
    with seal_dropped():
        record_some(org, 2)

    out, error = verify("--org", "acme")

    assert (out, error) == (ok(f"acme (chain {org.pk})", len(trail), pending=2) + "\n", None)


def test_a_purge_with_its_receipt_keeps_the_chain_valid(trail, org):
    retention_delete(f"DELETE FROM {TABLE} WHERE chain = %s AND seq <= 3", [org.pk])
    unvouched = (
        f"acme (chain {org.pk}): event #{trail[3].pk} (sequence 4): removed: the chain starts "
        "at sequence 4 and no receipt says events 1 to 3 were purged\n"
    )

    out, error = verify("--org", "acme")
    assert (out, status(error)) == (unvouched, 1)

    receipt = recorder.record(
        chain.RECEIPT_ACTION,
        organization_id=org.pk,
        object_type="audit.auditevent",
        label="events 1 to 3",
        diff=chain.receipt_content(3, trail[2].hash, 3, "a", "b"),
        actor="system:audit.retention",
    )
    sealing.seal(org.pk)
    out, error = verify("--org", "acme")
    assert (out, error) == (ok(f"acme (chain {org.pk})", len(trail) - 2, first=4) + "\n", None)

    # A receipt changed to vouch for another history vouches for nothing.
    raw_update(receipt, diff=chain.receipt_content(3, trail[1].hash, 3, "a", "b"))
    out, error = verify("--org", "acme")
    assert (out, status(error)) == (unvouched, 1)


def test_only_the_organisation_asked_for_is_walked(trail, org, other_org):
    theirs = sealed_chain(other_org)
    raw_delete(theirs[-1])

    out, error = verify("--org", "acme")
    whole, whole_error = verify()

    assert (out, error) == (ok(f"acme (chain {org.pk})", len(trail)) + "\n", None)
    assert f"globex (chain {other_org.pk}): the chain (sequence {len(theirs)}): removed" in whole
    assert status(whole_error) == 1


def test_an_unknown_organisation_is_a_clear_error_and_nothing_else(trail):
    out, error = verify("--org", "nobody")

    assert out == ""
    assert status(error) == 2
    assert str(error) == "no organisation has the slug 'nobody'"


def test_a_deleted_organisations_trail_is_still_walked(trail, org):
    chain_id = org.pk
    org.delete()
    sealing.seal(chain_id)
    total = AuditEvent.objects.filter(chain=chain_id).count()

    out, error = verify()

    assert error is None, out
    assert out.splitlines()[1] == ok(f"deleted organisation (chain {chain_id})", total)
    assert total > len(trail)
    last = AuditEvent.objects.get(chain=chain_id, seq=total)
    assert (last.action, last.object_type) == ("deleted", "catalog.organization")


def test_a_chain_longer_than_a_chunk_is_streamed_and_verified(trail, org, monkeypatch):
    monkeypatch.setattr(audit_verify, "CHUNK", 2)
    target = trail[-2]
    raw_update(target, object_label="changed")

    out, error = verify("--org", "acme")

    assert out.startswith(
        f"acme (chain {org.pk}): event #{target.pk} (sequence {target.seq}): altered"
    )
    assert status(error) == 1


def test_the_head_is_read_before_the_walk_so_events_sealed_meanwhile_are_fine(trail, org):
    head = ChainHead.objects.get(chain=org.pk)
    record_some(org, 2)
    sealed_chain(org)
    events = (event for event, _ in audit_verify._stored(org.pk, sealed=True))

    report = chain.verify(org.pk, events, recorder.chain_key(), (head.seq, head.hash))

    assert (report.ok, report.last_seq) == (True, len(trail) + 2)
