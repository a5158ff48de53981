"""Retention (controlplane/audit/retention.py): exactly what is older than its policy
goes, per category and per organisation, in batches; what a reader still needs stays;
old audit events leave a receipt that keeps `audit_verify` passing, also after a purge
stopped half-way and run again; `run_retention --dry-run` removes nothing."""

from __future__ import annotations

import io
import json
import re
import time
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from controlplane.alerting.models import Alert, AlertEvent, Severity
from controlplane.audit import chain, policy, recorder, retention, sealing
from controlplane.audit.models import AuditEvent, ChainHead, RetentionOverride
from controlplane.catalog.models import Organization, Service
from controlplane.jobs.models import JobRun
from controlplane.paging.models import Escalation, Notification
from controlplane.slo.models import SLO, SLOEvaluation, SLOSnapshot
from tests.audit.helpers import raw_delete, raw_update, verify
from tests.factories import make_job, make_slo

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)
MICROSECOND = timedelta(microseconds=1)
DELETE_EVENTS = f'DELETE FROM "{AuditEvent._meta.db_table}"'


def keep(organization: Organization, **days: int) -> None:
    for category, value in days.items():
        RetentionOverride.objects.create(organization=organization, category=category, days=value)


# --- audit events, written fast: sealed already, the chain computed here -------------------


COLUMNS = ("chain", *chain.CONTENT_FIELDS[1:], "mac", "seq", "prev_hash", "hash")


def append_sealed(chain_id: int, times: Sequence[datetime], tag: str = "e") -> None:
    """Events at `times` appended to the chain, sealed as the sealer would have sealed
    them (after whatever was waiting there), written straight into the table: COPY on
    PostgreSQL, one executemany on SQLite, so that 100,000 take seconds."""
    sealing.seal(chain_id)
    key = recorder.chain_key()
    head, _ = ChainHead.objects.get_or_create(chain=chain_id)
    seq, previous = head.seq, head.hash
    fields = [AuditEvent._meta.get_field(name) for name in COLUMNS]
    rows = []
    for number, at in enumerate(times):
        content = {
            "chain": chain_id,
            "organization_id": chain_id or None,
            "at": at.isoformat(),
            "actor": "system:tests",
            "action": "updated",
            "object_type": "catalog.service",
            "object_id": f"{tag}{number}",
            "object_label": f"service {number}",
            "diff": {"number": number},
            "request_id": "",
            "trace_id": "",
        }
        mac = chain.content_mac(key, content)
        seq += 1
        digest = chain.link_hash(key, seq, previous, mac)
        values = {**content, "at": at, "mac": mac, "seq": seq, "prev_hash": previous}
        values["hash"] = previous = digest
        rows.append(values)
    table = connection.ops.quote_name(AuditEvent._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for values in rows:
                    copy.write_row(
                        [
                            json.dumps(values[f.attname])
                            if f.attname == "diff"
                            else values[f.attname]
                            for f in fields
                        ]
                    )
        else:
            marks = ", ".join("%s" for _ in fields)
            cursor.executemany(
                f"INSERT INTO {table} ({columns}) VALUES ({marks})",
                [
                    [f.get_db_prep_save(values[f.attname], connection) for f in fields]
                    for values in rows
                ],
            )
    ChainHead.objects.filter(chain=chain_id).update(seq=seq, hash=previous)


def sealed_count(chain_id: int) -> int:
    sealing.seal(chain_id)
    return AuditEvent.objects.filter(chain=chain_id, seq__isnull=False).count()


def kept_ids(chain_id: int) -> list[str]:
    """The appended events still in the chain, in sequence order."""
    return list(
        AuditEvent.objects.filter(chain=chain_id, actor="system:tests")
        .order_by("seq")
        .values_list("object_id", flat=True)
    )


def receipts(chain_id: int) -> list[AuditEvent]:
    return list(
        AuditEvent.objects.filter(chain=chain_id, action=chain.RECEIPT_ACTION).order_by("seq")
    )


def hash_at(chain_id: int, seq: int) -> str:
    return AuditEvent.objects.get(chain=chain_id, seq=seq).hash


def assert_verifies(*args: str) -> None:
    out, error = verify(*args)
    assert error is None, out


def test_audit_events_older_than_each_organisations_retention_go_leaving_a_receipt(org, other_org):
    keep(org, audit_events=30)
    keep(other_org, audit_events=60)
    # What setting up recorded (the organisations, their built-in rules, the overrides)
    # is 400 days old by then: older than either retention, first in each chain.
    now = timezone.now() + 400 * DAY
    times = [
        now - 45 * DAY,
        now - 31 * DAY,
        now - 30 * DAY - MICROSECOND,
        now - 30 * DAY,  # exactly at acme's cutoff: stays
        now - 59 * DAY,  # older, but after one that stays: the chain is cut as a prefix
        now - 10 * DAY,
    ]
    append_sealed(org.pk, times)
    append_sealed(other_org.pk, times)
    setup = sealed_count(org.pk) - len(times)
    other_setup = sealed_count(other_org.pk) - len(times)
    last_going = hash_at(org.pk, setup + 3)
    oldest = min(
        AuditEvent.objects.filter(chain=org.pk, seq__lte=setup).values_list("at", flat=True)
    )

    removed = retention.purge(org, now)
    other_removed = retention.purge(other_org, now)

    assert removed == {
        "notifications": 0,
        "job_runs": 0,
        "alerts": 0,
        "slo_snapshots": 0,
        "audit_events": setup + 3,
    }
    assert kept_ids(org.pk) == ["e3", "e4", "e5"]
    [receipt] = receipts(org.pk)
    assert receipt.diff == chain.receipt_content(
        setup + 3, last_going, setup + 3, oldest.isoformat(), times[2].isoformat()
    )
    assert receipt.actor == "system:audit.retention"
    assert receipt.object_type == "audit.auditevent"
    assert receipt.seq == setup + len(times) + 1  # sealed, the chain's newest event
    # Nothing but the prefix: the rest of the chain is as it was.
    assert AuditEvent.objects.filter(chain=org.pk).order_by("seq").first().seq == setup + 4
    # globex keeps 60 days: only what setting it up recorded was older.
    assert other_removed["audit_events"] == other_setup
    assert kept_ids(other_org.pk) == ["e0", "e1", "e2", "e3", "e4", "e5"]
    assert_verifies("--org", org.slug)
    assert_verifies("--org", other_org.slug)
    assert_verifies()


def test_a_second_purge_later_leaves_a_second_receipt_and_the_chain_still_verifies(org):
    keep(org, audit_events=30)
    now = timezone.now() + 400 * DAY
    append_sealed(org.pk, [now - 40 * DAY, now - 30 * DAY, now - 59 * DAY, now - 10 * DAY])
    retention.purge(org, now)
    assert kept_ids(org.pk) == ["e1", "e2", "e3"]
    through = AuditEvent.objects.get(chain=org.pk, object_id="e2").seq

    later = retention.purge(org, now + 20 * DAY)

    # e3 is exactly 30 days old then: it stays, and the first receipt after it too.
    assert later["audit_events"] == 2
    assert kept_ids(org.pk) == ["e3"]
    first, second = receipts(org.pk)
    assert second.diff["through_seq"] == through
    assert second.diff["removed"] == 2
    assert first.seq < second.seq
    assert_verifies("--org", org.slug)


def test_nothing_older_than_the_policy_means_no_receipt(org):
    now = timezone.now()
    append_sealed(org.pk, [now - 10 * DAY, now - DAY])
    count = AuditEvent.objects.filter(chain=org.pk).count()

    assert retention.purge(org, now)["audit_events"] == 0

    assert AuditEvent.objects.filter(chain=org.pk).count() == count
    assert receipts(org.pk) == []


class Crash(Exception):
    """The worker dying between two batches."""


def test_a_purge_stopped_after_its_receipt_is_finished_by_the_next_run(org, monkeypatch):
    keep(org, audit_events=30)
    now = timezone.now() + 400 * DAY
    append_sealed(org.pk, [now - (100 - n) * DAY for n in range(10)] + [now - DAY, now])
    going = sealed_count(org.pk) - 2
    real_batch = retention.delete_audit_batch
    batches = []

    def dying(*args):
        if batches:
            raise Crash
        batches.append(real_batch(*args))
        return batches[-1]

    monkeypatch.setattr(retention, "delete_audit_batch", dying)
    with pytest.raises(Crash):
        retention.purge(org, now, batch_size=3)
    monkeypatch.undo()

    # The receipt came first and names the whole cut; one batch went before the crash.
    [receipt] = receipts(org.pk)
    assert receipt.diff["through_seq"] == going
    assert batches == [3]
    # Until the next run the chain starts inside the receipt's range: a purge under way,
    # which audit_verify accepts as whole.
    assert AuditEvent.objects.filter(chain=org.pk).order_by("seq").first().seq == 4
    assert_verifies("--org", org.slug)
    [cut] = [c for c in retention.plan(org, now) if c.category == "audit_events"]
    assert cut.rows == going - 3

    removed = retention.purge(org, now, batch_size=3)

    assert removed["audit_events"] == going - 3
    assert kept_ids(org.pk) == ["e10", "e11"]
    assert len(receipts(org.pk)) == 1
    assert_verifies("--org", org.slug)


def test_over_100000_audit_events_go_in_batches_and_the_receipt_keeps_the_chain_valid(org):
    now = timezone.now() + 400 * DAY
    old = [now - 1000 * DAY + n * timedelta(seconds=1) for n in range(100_000)]
    young = [now - 10 * DAY + n * timedelta(minutes=1) for n in range(50)]
    append_sealed(org.pk, old + young)
    going = sealed_count(org.pk) - len(young)
    last_going = hash_at(org.pk, going)
    newest_going = max(
        AuditEvent.objects.filter(chain=org.pk, seq__lte=going).values_list("at", flat=True)
    )

    started = time.monotonic()
    with CaptureQueriesContext(connection) as queries:
        removed = retention.purge(org, now, batch_size=20_000)
    took = time.monotonic() - started

    assert removed["audit_events"] == going > 100_000
    deletes = [q["sql"] for q in queries.captured_queries if q["sql"].startswith(DELETE_EVENTS)]
    assert len(deletes) == -(-going // 20_000)  # 6 batches, each its own statement
    assert kept_ids(org.pk) == [f"e{n}" for n in range(100_000, 100_050)]
    [receipt] = receipts(org.pk)
    assert receipt.diff["through_seq"] == going
    assert receipt.diff["last_hash"] == last_going
    assert receipt.diff["removed"] == going
    assert receipt.diff["newest_at"] == newest_going.isoformat()
    assert_verifies("--org", org.slug)
    print(f"purged {going} audit events in {took:.1f} s")


def test_a_broken_part_of_the_chain_is_reported_never_purged(org):
    keep(org, slo_snapshots=93, audit_events=30)
    now = timezone.now() + 400 * DAY
    append_sealed(org.pk, [now - 200 * DAY, now - 150 * DAY, now - DAY])
    tampered = AuditEvent.objects.get(chain=org.pk, object_id="e1")
    raw_update(tampered, object_label="nothing to see")
    slo = make_slo(org)
    SLOSnapshot.objects.create(slo=slo, at=now - 100 * DAY, status="ok")
    count = AuditEvent.objects.filter(chain=org.pk).count()

    with pytest.raises(retention.ChainBroken) as broken:
        retention.purge(org, now)

    assert broken.value.finding.event_id == tampered.pk
    assert broken.value.finding.problem == "altered"
    # The evidence stays; the other categories were purged before.
    assert AuditEvent.objects.filter(chain=org.pk, action=chain.RECEIPT_ACTION).count() == 0
    assert AuditEvent.objects.filter(chain=org.pk, seq__isnull=False).count() == count + 1
    assert AuditEvent.objects.filter(chain=org.pk, action="retention.removed").count() == 1
    assert not SLOSnapshot.objects.exists()


def test_a_tampered_event_is_found_also_after_an_earlier_purge(org):
    keep(org, audit_events=30)
    now = timezone.now() + 400 * DAY
    append_sealed(org.pk, [now - 200 * DAY, now - 20 * DAY, now - 10 * DAY, now - DAY])
    retention.purge(org, now)
    assert kept_ids(org.pk) == ["e1", "e2", "e3"]
    tampered = AuditEvent.objects.get(chain=org.pk, object_id="e2")
    raw_update(tampered, diff={"number": 20})

    # Then the chain starts after 1, vouched for by the receipt at its end.
    with pytest.raises(retention.ChainBroken) as broken:
        retention.purge(org, now + 15 * DAY)

    assert (broken.value.finding.event_id, broken.value.finding.problem) == (
        tampered.pk,
        "altered",
    )
    assert kept_ids(org.pk) == ["e1", "e2", "e3"]
    assert len(receipts(org.pk)) == 1


def test_events_removed_by_hand_from_the_start_are_reported_not_purged_further(org):
    keep(org, audit_events=30)
    now = timezone.now() + 400 * DAY
    append_sealed(org.pk, [now - 200 * DAY, now - 100 * DAY, now - DAY])
    first = AuditEvent.objects.get(chain=org.pk, seq=1)
    raw_delete(first)
    count = AuditEvent.objects.filter(chain=org.pk).count()

    with pytest.raises(retention.ChainBroken) as broken:
        retention.purge(org, now)

    assert broken.value.finding.problem == "removed"
    assert broken.value.finding.seq == 2
    assert AuditEvent.objects.filter(chain=org.pk).count() == count
    assert receipts(org.pk) == []


def test_a_tampered_event_the_purge_keeps_stays_for_audit_verify_to_report(org):
    keep(org, audit_events=30)
    now = timezone.now() + 400 * DAY
    append_sealed(org.pk, [now - 200 * DAY, now - 20 * DAY, now - DAY])
    tampered = AuditEvent.objects.get(chain=org.pk, object_id="e2")
    raw_update(tampered, object_label="nothing to see")

    removed = retention.purge(org, now)

    # What went was intact; the tampering is in what stays, still found.
    assert kept_ids(org.pk) == ["e1", "e2"]
    assert removed["audit_events"] > 1
    out, error = verify("--org", org.slug)
    assert error is not None
    assert f"event #{tampered.pk}" in out
    assert "altered" in out


def test_events_of_no_organisation_and_of_deleted_ones_are_purged_without_one(org):
    now = timezone.now() + 400 * DAY
    gone = Organization.objects.create(slug="gone", name="Gone")
    append_sealed(gone.pk, [now - 500 * DAY, now - DAY])
    gone_id, going_of_gone = gone.pk, sealed_count(gone.pk) - 1
    gone.delete()  # recorded in its chain, which outlives it (after e1: kept)
    append_sealed(0, [now - 400 * DAY, now - DAY])
    append_sealed(org.pk, [now - 500 * DAY])
    going = (sealed_count(0) - 1) + going_of_gone
    acme = AuditEvent.objects.filter(chain=org.pk).count()

    removed = retention.purge(None, now)

    assert removed == {"audit_events": going}
    assert kept_ids(0) == ["e1"]
    assert kept_ids(gone_id) == ["e1"]
    assert len(receipts(0)) == len(receipts(gone_id)) == 1
    assert AuditEvent.objects.filter(chain=org.pk).count() == acme
    assert_verifies()


# --- notifications ------------------------------------------------------------------------


def make_alert(organization, state=Alert.State.RESOLVED, *, resolved_at=None, **fields) -> Alert:
    """An alert as the lifecycle leaves it, its timeline handed over unless told."""
    dispatch = fields.pop("dispatch", AlertEvent.Dispatch.DONE)
    started = fields.pop("started_at", (resolved_at or timezone.now()) - timedelta(hours=1))
    alert = Alert.objects.create(
        organization=organization,
        rule_key="queue.depth",
        fingerprint=f"fp-{uuid.uuid4().hex}",
        severity=fields.pop("severity", Severity.WARNING),
        state=state,
        started_at=started,
        resolved_at=resolved_at,
        **fields,
    )
    AlertEvent.objects.create(
        alert=alert, kind="opened", at=started, actor="system:beat", dispatch=dispatch
    )
    if resolved_at is not None:
        AlertEvent.objects.create(
            alert=alert, kind="resolved", at=resolved_at, actor="system:beat", dispatch=dispatch
        )
    return alert


def notify(organization, alert, created_at, state=Notification.State.SENT, **fields):
    return Notification.objects.create(
        organization=organization,
        alert=alert,
        channel_name="ops",
        channel_kind="email",
        event=fields.pop("event", "trigger"),
        state=state,
        created_at=created_at,
        **fields,
    )


def test_notifications_go_when_finished_older_than_the_policy_and_their_alert_settled(
    org, other_org
):
    keep(org, notifications=30)
    keep(other_org, notifications=60)
    now = timezone.now()
    resolved = make_alert(org, resolved_at=now - 35 * DAY)
    firing = make_alert(org, Alert.State.FIRING, started_at=now - 400 * DAY)
    unsent = make_alert(org, resolved_at=now - 35 * DAY, dispatch=AlertEvent.Dispatch.PENDING)
    State = Notification.State
    going = [
        notify(org, resolved, now - 40 * DAY),
        notify(org, resolved, now - 31 * DAY, State.DEAD),
        notify(org, resolved, now - 30 * DAY - MICROSECOND, event="resolve"),
        notify(org, None, now - 50 * DAY, is_test=True),  # a channel test
    ]
    staying = [
        notify(org, resolved, now - 30 * DAY),  # exactly at the cutoff
        notify(org, resolved, now - 5 * DAY),
        notify(org, resolved, now - 40 * DAY, State.PENDING),
        notify(org, resolved, now - 40 * DAY, State.SENDING),
        notify(org, resolved, now - 40 * DAY, State.FAILED),  # due again
        notify(org, firing, now - 300 * DAY),  # the engine reads what it sent
        notify(org, unsent, now - 40 * DAY),  # its resolve not handed over yet
    ]
    theirs = make_alert(other_org, resolved_at=now - 50 * DAY)
    other_staying = notify(other_org, theirs, now - 45 * DAY)
    other_going = notify(other_org, theirs, now - 61 * DAY)

    [cut] = [c for c in retention.plan(org, now) if c.category == "notifications"]
    removed = retention.purge(org, now, batch_size=2)
    other_removed = retention.purge(other_org, now)

    assert cut.rows == removed["notifications"] == len(going)
    assert cut.cutoff == now - 30 * DAY
    assert set(Notification.objects.filter(organization=org).values_list("pk", flat=True)) == {
        n.pk for n in staying
    }
    assert other_removed["notifications"] == 1
    assert not Notification.objects.filter(pk=other_going.pk).exists()
    assert Notification.objects.filter(pk=other_staying.pk).exists()
    event = AuditEvent.objects.get(chain=org.pk, action="retention.removed")
    assert event.object_type == "paging.notification"
    assert event.actor == "system:audit.retention"
    assert event.diff == {
        "category": "notifications",
        "days": 30,
        "cutoff": (now - 30 * DAY).isoformat(),
        "removed": 4,
    }


# --- job runs -----------------------------------------------------------------------------


def run(monitor, created_at, outcome=JobRun.Outcome.SUCCESS, **fields) -> JobRun:
    finished = fields.pop("finished_at", created_at if outcome else None)
    started = fields.pop("started_at", created_at - timedelta(minutes=5))
    return JobRun.objects.create(
        monitor=monitor,
        created_at=created_at,
        started_at=started,
        finished_at=finished,
        outcome=outcome,
        excerpt=f"log of {outcome or 'running'}",
        **fields,
    )


def test_job_runs_go_when_finished_and_older_but_a_monitors_last_runs_stay(org, other_org):
    keep(org, job_runs=30)
    now = timezone.now()
    Outcome = JobRun.Outcome
    payroll = make_job(org, "payroll-export")
    going = [
        run(payroll, now - 100 * DAY),  # a success with a later one before the cutoff
        run(payroll, now - 95 * DAY, Outcome.FAILURE),
        run(payroll, now - 91 * DAY, Outcome.MISSED, started_at=None, finished_at=None),
        # Timed out, never finished, past any late finish's pairing.
        run(payroll, now - 60 * DAY, Outcome.TIMEOUT, finished_at=None),
        run(payroll, now - 31 * DAY, Outcome.TOO_FAST),
    ]
    staying = [
        run(payroll, now - 92 * DAY),  # its newest success older than the cutoff
        run(payroll, now - 50 * DAY, "", finished_at=None),  # still running
        run(payroll, now - 30 * DAY, Outcome.FAILURE),  # exactly at the cutoff
        run(payroll, now - 5 * DAY, Outcome.FAILURE),
    ]
    # A monitor whose runs are all old keeps its last run, its last one not missed, and
    # its last success: the jobs pages and the next ping read them.
    quiet = make_job(org, "equipment-sync")
    going.append(run(quiet, now - 250 * DAY, Outcome.FAILURE))
    staying += [
        run(quiet, now - 200 * DAY),
        run(quiet, now - 150 * DAY, Outcome.FAILURE),
        run(quiet, now - 120 * DAY, Outcome.MISSED, started_at=None, finished_at=None),
    ]
    # Another organisation keeps 10 days: a run timed out 15 days ago, never finished,
    # could still be paired with a late finish (jobs/runs.py); one of 25 days cannot.
    keep(other_org, job_runs=10)
    theirs = make_job(other_org, "payroll-export")
    their_going = run(theirs, now - 25 * DAY, Outcome.TIMEOUT, finished_at=None)
    their_staying = [
        run(theirs, now - 15 * DAY, Outcome.TIMEOUT, finished_at=None),
        run(theirs, now - DAY),
    ]

    [cut] = [c for c in retention.plan(org, now) if c.category == "job_runs"]
    removed = retention.purge(org, now, batch_size=2)
    their_removed = retention.purge(other_org, now)

    assert cut.rows == removed["job_runs"] == len(going)
    assert set(JobRun.objects.filter(monitor__organization=org).values_list("pk", flat=True)) == {
        r.pk for r in staying
    }
    assert their_removed["job_runs"] == 1
    assert not JobRun.objects.filter(pk=their_going.pk).exists()
    assert JobRun.objects.filter(pk__in=[r.pk for r in their_staying]).count() == 2


def test_the_runs_an_rpo_objective_measures_stay_for_the_longest_slo_window(org):
    keep(org, job_runs=7)
    now = timezone.now()
    backup = make_job(org, "nightly-backup", kind="backup")
    rpo = SLO(
        organization=org,
        slug="backup-rpo",
        name="Backup RPO",
        kind=SLO.Kind.RPO,
        job=backup,
        objective=99.0,
        window=SLO.Window.QUARTER,
        budgeting=SLO.Budgeting.TIMESLICES,
    )
    rpo.full_clean()
    rpo.save()
    SLOEvaluation.objects.create(slo=rpo)
    going = [run(backup, now - 200 * DAY), run(backup, now - 150 * DAY, JobRun.Outcome.FAILURE)]
    staying = [
        run(backup, now - 100 * DAY),  # the success the window's first slices count from
        run(backup, now - 60 * DAY),
        run(backup, now - 20 * DAY),
        run(backup, now - DAY),
    ]

    removed = retention.purge(org, now)

    assert removed["job_runs"] == len(going)
    assert set(JobRun.objects.filter(monitor=backup).values_list("pk", flat=True)) == {
        r.pk for r in staying
    }


# --- alerts -------------------------------------------------------------------------------


def test_resolved_alerts_go_with_their_timelines_but_never_open_or_still_needed_ones(
    org, other_org
):
    keep(org, alerts=30, notifications=30)
    now = timezone.now()
    old = make_alert(org, resolved_at=now - 40 * DAY)
    notify(org, old, now - 41 * DAY)  # finished and old: goes with it
    Escalation.objects.create(alert=old, policy_version=1, snapshot={})
    going = [old, make_alert(org, resolved_at=now - 30 * DAY - MICROSECOND)]
    boundary = make_alert(org, resolved_at=now - 30 * DAY)
    firing = make_alert(org, Alert.State.FIRING, started_at=now - 400 * DAY)
    acknowledged = make_alert(org, Alert.State.ACKNOWLEDGED, started_at=now - 400 * DAY)
    unsent = make_alert(org, resolved_at=now - 40 * DAY, dispatch=AlertEvent.Dispatch.PENDING)
    queued = make_alert(org, resolved_at=now - 40 * DAY)
    notify(org, queued, now - 40 * DAY, Notification.State.PENDING, event="resolve")
    recently_told = make_alert(org, resolved_at=now - 40 * DAY)
    notify(org, recently_told, now - 20 * DAY)  # kept: notifications keep 30 days
    staying = [boundary, firing, acknowledged, unsent, queued, recently_told]
    theirs = make_alert(other_org, resolved_at=now - 40 * DAY)  # globex keeps 180 days

    [cut] = [c for c in retention.plan(org, now) if c.category == "alerts"]
    removed = retention.purge(org, now, batch_size=1)
    retention.purge(other_org, now)

    assert cut.rows == removed["alerts"] == len(going)
    assert removed["notifications"] == 1
    assert set(Alert.objects.filter(organization=org).values_list("pk", flat=True)) == {
        a.pk for a in staying
    }
    assert Alert.objects.filter(pk=theirs.pk).exists()
    assert not AlertEvent.objects.filter(alert_id__in=[a.pk for a in going]).exists()
    assert not Escalation.objects.filter(alert_id=old.pk).exists()
    event = AuditEvent.objects.get(
        chain=org.pk, action="retention.removed", diff__category="alerts"
    )
    assert event.diff["removed"] == 2
    assert event.diff["with_them"] == {"alerting.AlertEvent": 4, "paging.Escalation": 1}


def test_incidents_an_rto_objective_counts_stay_for_the_longest_slo_window(org):
    keep(org, alerts=7)
    now = timezone.now()
    api = Service.objects.create(organization=org, slug="api", name="API")
    rto = SLO(
        organization=org,
        slug="api-rto",
        name="API RTO",
        kind=SLO.Kind.RTO,
        incident_services=["api"],
        objective=99.0,
        window=SLO.Window.D30,
        budgeting=SLO.Budgeting.OCCURRENCES,
    )
    rto.full_clean()
    rto.save()
    incident = make_alert(org, resolved_at=now - 60 * DAY, service=api, severity=Severity.CRITICAL)
    old_incident = make_alert(
        org, resolved_at=now - 100 * DAY, service=api, severity=Severity.CRITICAL
    )
    warning = make_alert(org, resolved_at=now - 60 * DAY, service=api)

    removed = retention.purge(org, now)

    assert removed["alerts"] == 2
    assert list(Alert.objects.filter(organization=org).values_list("pk", flat=True)) == [
        incident.pk
    ]
    assert not Alert.objects.filter(pk__in=[old_incident.pk, warning.pk]).exists()


# --- SLO snapshots ------------------------------------------------------------------------


def test_slo_snapshots_older_than_the_policy_go(org, other_org):
    keep(org, slo_snapshots=93)
    now = timezone.now()
    ours, theirs = make_slo(org), make_slo(other_org)
    for slo in (ours, theirs):
        for age in (401 * DAY, 100 * DAY, 93 * DAY, 50 * DAY):
            SLOSnapshot.objects.create(slo=slo, at=now - age, status="ok")

    [cut] = [c for c in retention.plan(org, now) if c.category == "slo_snapshots"]
    removed = retention.purge(org, now)
    other_removed = retention.purge(other_org, now)

    assert cut.rows == removed["slo_snapshots"] == 2
    assert sorted(
        (now - at).days for at in SLOSnapshot.objects.filter(slo=ours).values_list("at", flat=True)
    ) == [50, 93]
    assert other_removed["slo_snapshots"] == 1
    assert SLOSnapshot.objects.filter(slo=theirs).count() == 3


# --- run_retention ------------------------------------------------------------------------


def run_retention(*args: str) -> str:
    out = io.StringIO()
    call_command("run_retention", *args, stdout=out)
    return out.getvalue()


LINE = re.compile(
    r"^(?P<owner>\(no organisation\)|\S+) +(?P<category>\w+) +(?P<days>\d+) days"
    r"  before (?P<cutoff>\d{4}-\d\d-\d\d \d\d:\d\d UTC) +(?P<rows>[\d,]+) "
    r"(?P<verb>would go|removed)$"
)


def parsed(out: str) -> dict[tuple[str, str], tuple[int, int, str]]:
    """{(owner, category): (days, rows, verb)} of run_retention's lines, all of which parse."""
    found = {}
    for line in out.splitlines():
        match = LINE.match(line)
        assert match, line
        rows = int(match["rows"].replace(",", ""))
        found[match["owner"], match["category"]] = (int(match["days"]), rows, match["verb"])
    return found


def test_dry_run_prints_what_would_go_and_removes_nothing(org, other_org):
    keep(org, notifications=30)
    now = timezone.now()
    alert = make_alert(org, resolved_at=now - 300 * DAY)
    for age in (40, 50, 10):
        notify(org, alert, now - age * DAY)
    # Events of no organisation: what setting up the organisations recorded is in
    # theirs, and recent.
    append_sealed(0, [now - 400 * DAY, now - 370 * DAY, now])
    events = AuditEvent.objects.count()

    lines = parsed(run_retention("--dry-run"))

    assert set(lines) == {
        *((owner, category) for owner in ("acme", "globex") for category in policy.CATEGORIES),
        ("(no organisation)", "audit_events"),
    }
    assert lines["acme", "notifications"] == (30, 2, "would go")
    assert lines["acme", "alerts"] == (180, 0, "would go")  # its last notification keeps it
    assert lines["globex", "notifications"] == (90, 0, "would go")
    assert lines["(no organisation)", "audit_events"] == (365, 2, "would go")
    assert Notification.objects.count() == 3
    assert AuditEvent.objects.count() == events

    lines = parsed(run_retention())

    assert lines["acme", "notifications"] == (30, 2, "removed")
    assert lines["(no organisation)", "audit_events"] == (365, 2, "removed")
    assert Notification.objects.count() == 1
    assert kept_ids(0) == ["e2"]
    assert_verifies()


def test_dry_run_of_one_organisation_names_it_only(org, other_org):
    lines = parsed(run_retention("--dry-run", "--org", "globex"))

    assert set(lines) == {("globex", category) for category in policy.CATEGORIES}
    assert lines["globex", "slo_snapshots"] == (400, 0, "would go")


def test_unknown_organisation_is_an_error():
    with pytest.raises(CommandError, match="no organisation with the slug 'nope'"):
        run_retention("--dry-run", "--org", "nope")
