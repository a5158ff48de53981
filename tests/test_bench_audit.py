"""The audit bench's own parts (bench/audit.py): what it loads is a chain the key
vouches for, its servers' switch pauses the trail and nothing else, and its retention
measurement runs end to end on a small number of events (BENCH_AUDIT_EVENTS)."""

from __future__ import annotations

import dataclasses
import io
import json
import os
from datetime import UTC, datetime, timedelta
from wsgiref.util import setup_testing_defaults

import pytest
from django.core.signals import request_finished, request_started
from django.db import close_old_connections

from bench import audit
from controlplane.audit import chain
from controlplane.audit.models import AuditEvent
from controlplane.catalog.models import ApiToken
from tests.factories import make_rule
from tests.services import require_postgresql

KEY = b"k" * 32
CUTOFF = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def test_the_number_of_events_comes_from_the_environment():
    assert audit.events_wanted({}) == 1_000_000
    assert audit.events_wanted({"BENCH_AUDIT_EVENTS": "20_000"}) == 20_000
    for wrong in ("many", "-5", "10"):
        with pytest.raises(ValueError, match="BENCH_AUDIT_EVENTS"):
            audit.events_wanted({"BENCH_AUDIT_EVENTS": wrong})


def test_the_event_times_leave_the_newest_after_the_cutoff():
    times = list(audit.event_times(1000, CUTOFF, kept=3))

    assert len(times) == 1000
    assert sum(at < CUTOFF for at in times) == 997
    assert times == sorted(times)
    assert times[996] == CUTOFF - timedelta(seconds=0.5)


def test_the_loaded_rows_form_a_chain_the_key_verifies():
    rows = list(audit.sealed_rows(KEY, 7, audit.event_times(50, CUTOFF, kept=5)))
    events = [audit.stored(row, n + 1) for n, row in enumerate(rows)]
    last = events[-1]

    report = chain.verify(7, events, KEY, head=(last.seq, last.hash))

    assert report.ok, report.finding
    assert (report.checked, report.first_seq, report.last_seq) == (50, 1, 50)
    assert events[0].prev_hash == chain.GENESIS
    assert json.loads(rows[3][audit.COLUMNS.index("diff")]) == events[3].content["diff"]


def test_a_loaded_row_changed_afterwards_is_caught_by_the_chain():
    rows = list(audit.sealed_rows(KEY, 7, audit.event_times(10, CUTOFF, kept=1)))
    events = [audit.stored(row, n + 1) for n, row in enumerate(rows)]
    content = {**events[4].content, "actor": "token:2"}
    events[4] = dataclasses.replace(events[4], content=content)

    report = chain.verify(7, events, KEY, head=(events[-1].seq, events[-1].hash))

    assert report.finding is not None
    assert (report.finding.event_id, report.finding.problem) == (5, "altered")


def test_a_server_without_the_switch_set_refuses_to_start():
    with pytest.raises(RuntimeError, match="BENCH_AUDIT_TRAIL"):
        audit.server_application({})
    with pytest.raises(RuntimeError, match="BENCH_AUDIT_TRAIL"):
        audit.server_application({"BENCH_AUDIT_TRAIL": "no"})


@pytest.fixture
def wsgi_calls():
    """Calls of a WSGI application inside the test's transaction: as Django's test
    client does, the request signals do not close the connection that holds it."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def _patch(application, token: str, key: str, body: dict) -> tuple[str, bytes]:
    data = json.dumps(body).encode()
    environ = {
        "REQUEST_METHOD": "PATCH",
        "PATH_INFO": f"/api/v1/rules/{key}/",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(data)),
        "HTTP_AUTHORIZATION": f"Bearer {token}",
        "HTTP_HOST": "localhost",
        "wsgi.input": io.BytesIO(data),
    }
    setup_testing_defaults(environ)
    answer = {}

    def start_response(status, headers, exc_info=None):
        answer["status"] = status

    body_out = b"".join(application(environ, start_response))
    return answer["status"], body_out


def _updates_recorded(rule) -> int:
    return AuditEvent.objects.filter(
        object_type="alerting.alertrule", object_id=str(rule.pk), action="updated"
    ).count()


def test_the_paused_server_saves_the_update_and_records_nothing(org, wsgi_calls):
    rule = make_rule(org, "bench.audit")
    _, token = ApiToken.issue(org, ApiToken.Scope.WRITE)
    on = audit.server_application({"BENCH_AUDIT_TRAIL": "on"})
    off = audit.server_application({"BENCH_AUDIT_TRAIL": "off"})

    status, _ = _patch(off, token, rule.key, audit.update_body(1))
    rule.refresh_from_db()

    assert status.startswith("200"), status
    assert rule.annotations == audit.update_body(1)["annotations"]
    assert _updates_recorded(rule) == 0

    status, _ = _patch(on, token, rule.key, audit.update_body(2))
    rule.refresh_from_db()

    assert status.startswith("200"), status
    assert rule.annotations == audit.update_body(2)["annotations"]
    [event] = AuditEvent.objects.filter(object_id=str(rule.pk), action="updated")
    assert event.diff["annotations"]["to"] == audit.update_body(2)["annotations"]
    assert event.actor.startswith("token:")


@pytest.mark.django_db(transaction=True)
def test_the_retention_measurement_runs_on_a_few_events(monkeypatch):
    require_postgresql()
    monkeypatch.setenv("BENCH_AUDIT_EVENTS", "3000")

    figures = audit.measure_retention(audit.events_wanted(os.environ))

    # 0.1 % of 3,000 kept: 3 events younger than the retention in each chain.
    assert (figures.events, figures.purged, figures.deleted) == (3000, 2997, 2997)
    assert figures.purge_rate > 0
    assert figures.delete_rate > 0
    kept = AuditEvent.objects.exclude(action=chain.RECEIPT_ACTION)
    assert kept.count() == 6
    [receipt] = AuditEvent.objects.filter(action=chain.RECEIPT_ACTION)
    assert receipt.diff["through_seq"] == 2997
    assert receipt.diff["removed"] == 2997
