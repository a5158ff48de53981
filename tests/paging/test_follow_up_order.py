"""A follow-up (acknowledge, resolve) must not reach a receiver before the trigger it
follows: PagerDuty drops an acknowledge or a resolve for a dedup_key it does not know
(PROTOCOLS.md), so a resolve that overtakes its trigger's retry leaves the incident
the late trigger opens unresolved. Found by the end-to-end tests' PagerDuty receiver,
which drops such follow-ups as PagerDuty does."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from controlplane.alerting import lifecycle, outbox
from controlplane.catalog.actors import BEAT
from controlplane.paging import engine
from tests.factories import make_alert, make_channel, make_policy, make_rule

pytestmark = pytest.mark.django_db


def test_a_resolve_waits_for_its_triggers_retry(org, pagerduty_receiver):
    channel = make_channel(
        org, "pager", "pagerduty", routing_key="R" * 32, url=f"{pagerduty_receiver.url}/v2/enqueue"
    )
    rule = make_rule(org, escalation_policy=make_policy(org, "p", steps=[(0, [channel])]))
    alert = make_alert(rule)
    outbox.drain()
    pagerduty_receiver.answer_next(1, 500, b"")  # no Retry-After: the usual backoff
    now = timezone.now()
    engine.deliver_due(now)

    lifecycle.resolve(alert, actor=BEAT, note="condition no longer true")
    outbox.drain()
    engine.deliver_due(now + timedelta(seconds=1))
    assert [r.body["event_action"] for r in pagerduty_receiver.requests] == ["trigger"]
    # Past the trigger's backoff: its retry goes, then (the task's next round) the resolve.
    engine.deliver_due(now + timedelta(minutes=1))
    engine.deliver_due(now + timedelta(minutes=1))

    received = [r.body["event_action"] for r in pagerduty_receiver.requests if r.answered]
    assert received == ["trigger", "trigger", "resolve"], "the resolve follows the retry"
    accepted = [r for r in pagerduty_receiver.requests if r.answered == 202]
    assert all(pagerduty_receiver.notified(r)[0].alert_id == alert.pk for r in accepted)
