"""An escalation step that pages whoever is on call in a schedule: decided as a target
like a channel (pure), written as one ledger row per person on call, emailed to them
and mentioned in the step's Slack message; a gap leaves the channels going and the
ledger saying nobody was on call."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from controlplane.alerting import lifecycle, outbox
from controlplane.catalog.actors import BEAT
from controlplane.catalog.models import Membership, Role
from controlplane.oncall.models import Responder, Shift
from controlplane.paging import engine, payloads
from controlplane.paging.escalation import (
    AlertFacts,
    NotificationKey,
    PolicyError,
    PolicySnapshot,
    StepSnapshot,
    decide,
)
from controlplane.paging.models import (
    Escalation,
    EscalationPolicy,
    EscalationStep,
    Notification,
)
from tests.factories import make_alert, make_channel, make_policy, make_rule, make_schedule

OPENED = datetime(2026, 1, 1, tzinfo=UTC)
PD, MAIL, ROTA = 1, 2, 7


def policy(**fields) -> PolicySnapshot:
    return PolicySnapshot(
        version=1,
        steps=(
            StepSnapshot(timedelta(0), (MAIL,), (ROTA,)),
            StepSnapshot(timedelta(minutes=5), (PD,)),
        ),
        pagerduty_channels=frozenset({PD}),
        **fields,
    )


def test_a_schedule_is_a_target_like_a_channel_but_never_pagerduty():
    snapshot = policy(remind_every=timedelta(minutes=30), notify_on_resolve=True)
    facts = AlertFacts(opened_at=OPENED)

    first = decide(snapshot, facts, OPENED, frozenset())
    assert first.due == (
        NotificationKey(0, 0, 0, MAIL, "trigger"),
        NotificationKey(0, 0, 0, 0, "trigger", ROTA),
    )
    sent = set(first.due) | set(decide(snapshot, facts, OPENED + timedelta(minutes=5), set()).due)
    reminders = decide(snapshot, facts, OPENED + timedelta(minutes=30), sent).due
    assert NotificationKey(-1, 0, 1, 0, "reminder", ROTA) in reminders

    acknowledged = AlertFacts(opened_at=OPENED, acknowledged_at=OPENED + timedelta(minutes=6))
    assert decide(snapshot, acknowledged, OPENED, sent).due == (
        NotificationKey(-1, 0, 0, PD, "acknowledge"),
    )
    resolved = AlertFacts(opened_at=OPENED, resolved_at=OPENED + timedelta(minutes=6))
    assert (
        NotificationKey(-1, 0, 0, 0, "resolve", ROTA)
        in decide(snapshot, resolved, OPENED, sent).due
    )
    quiet = policy(notify_on_resolve=False)
    assert decide(quiet, resolved, OPENED, sent).due == (NotificationKey(-1, 0, 0, PD, "resolve"),)


def test_a_step_may_page_a_schedule_alone_and_the_snapshot_keeps_it():
    alone = PolicySnapshot(version=1, steps=(StepSnapshot(timedelta(0), (), (ROTA,)),))
    alone.validate()
    assert PolicySnapshot.from_json(alone.to_json()) == alone
    # Snapshots taken before schedules existed read as steps without any.
    old = {"version": 1, "steps": [{"delay": 0, "channels": [MAIL]}]}
    assert PolicySnapshot.from_json(old).steps[0].schedules == ()
    with pytest.raises(PolicyError) as refused:
        PolicySnapshot(version=1, steps=(StepSnapshot(timedelta(0), (), (ROTA, ROTA)),)).validate()
    assert refused.value.errors == {"steps[0].schedules": ["Schedule 7 is listed more than once."]}
    with pytest.raises(PolicyError) as refused:
        PolicySnapshot(version=1, steps=(StepSnapshot(timedelta(0), (), ()),))
    assert refused.value.errors == {
        "steps[0].channels": ["A step needs at least one channel or schedule."]
    }


def test_only_well_formed_member_ids_become_mentions():
    assert payloads.slack_mentions(["U012AB", "W9", "U012AB", "!channel", "u1x", "WABC"]) == (
        "<@U012AB> <@WABC>"
    )


# --- through the engine, to receivers on loopback ---------------------------------------


@pytest.fixture
def people(org, member):
    alice = member(org, Role.RESPONDER, username="alice")
    bob = member(org, Role.RESPONDER, username="bob")
    return {
        "alice": Responder.objects.create(organization=org, user=alice, slack_member_id="U0ALICE"),
        "bob": Responder.objects.create(organization=org, user=bob),
    }


@pytest.fixture
def rota(org):
    return make_schedule(org, "primary")


def on_call(schedule, responder, hours: int = 1) -> Shift:
    now = timezone.now()
    return Shift.objects.create(
        schedule=schedule,
        responder=responder,
        start=now - timedelta(hours=hours),
        end=now + timedelta(hours=hours),
    )


@pytest.fixture
def paged(org, rota, slack_receiver, email_to_receiver):
    """A rule whose policy's first step tells Slack and whoever is on call in `rota`."""
    ops_slack = make_channel(
        org, "ops-slack", "slack", url=f"{slack_receiver.url}/hooks/T000/B000/XXXX"
    )
    steps = make_policy(org, "ops", steps=[(0, [ops_slack])], notify_on_resolve=True)
    EscalationStep.objects.get(policy=steps).schedules.set([rota])
    return make_rule(org, escalation_policy=steps)


def ledger() -> list[tuple[str, str, str]]:
    return sorted(Notification.objects.values_list("channel_name", "event", "state"))


@pytest.mark.django_db
def test_whoever_is_on_call_is_emailed_mentioned_in_slack_and_told_of_the_resolve(
    paged, rota, people, slack_receiver, email_to_receiver
):
    on_call(rota, people["alice"])
    alert = make_alert(paged, annotations={"summary": "queue is deep"})

    outbox.drain()
    engine.deliver_due()

    assert ledger() == [("ops-slack", "trigger", "sent"), ("primary: alice", "trigger", "sent")]
    row = Notification.objects.get(responder=people["alice"])
    assert (row.channel, row.channel_kind, row.schedule) == (None, "email", rota)
    [email] = email_to_receiver.messages
    assert email.rcpt_tos == ["alice@example.com"]
    assert email.message["X-Trace-Id"] == alert.trace_id
    [message] = slack_receiver.requests
    assert message.valid, message.problems
    assert message.body["text"].startswith("<@U0ALICE> ")
    assert "<@U0ALICE>" in str(message.body["blocks"])

    # Alice hands over to bob; the resolve goes to whom the trigger reached.
    Shift.objects.all().delete()
    on_call(rota, people["bob"])
    lifecycle.resolve(alert, actor=BEAT)
    outbox.drain()
    engine.deliver_due()

    assert ("primary: alice", "resolve", "sent") in ledger()
    assert not Notification.objects.filter(responder=people["bob"]).exists()
    assert [m.rcpt_tos for m in email_to_receiver.messages] == [["alice@example.com"]] * 2
    assert "<@U0ALICE>" in slack_receiver.requests[-1].body["text"]


@pytest.mark.django_db
def test_a_gap_leaves_the_channels_going_and_the_ledger_says_nobody_was_on_call(
    paged, rota, people, slack_receiver, email_to_receiver
):
    alert = make_alert(paged)

    outbox.drain()
    engine.deliver_due()
    # Deciding again writes no second "nobody": the gap's row stands for the key.
    assert engine.advance(Escalation.objects.get(alert=alert), timezone.now()) == 0

    assert ledger() == [
        ("ops-slack", "trigger", "sent"),
        ("primary: nobody on call", "trigger", "dead"),
    ]
    gap = Notification.objects.get(channel=None)
    assert gap.last_error.startswith("Nobody was on call in the schedule primary at ")
    assert email_to_receiver.messages == []
    assert "<@" not in slack_receiver.requests[0].body["text"]
    lifecycle.resolve(alert, actor=BEAT)
    outbox.drain()
    assert Notification.objects.filter(schedule=rota, event="resolve").count() == 0


@pytest.mark.django_db
def test_someone_on_call_with_no_address_is_given_up_saying_why(
    paged, rota, people, slack_receiver, email_to_receiver
):
    people["bob"].user.email = ""
    people["bob"].user.save(update_fields=["email"])
    on_call(rota, people["bob"])
    make_alert(paged)

    outbox.drain()
    engine.deliver_due()

    row = Notification.objects.get(responder=people["bob"])
    assert (row.state, row.last_error) == (
        "dead",
        "bob has no email address: add one to their account",
    )


# --- the admin's step inline --------------------------------------------------------------

POLICIES = "/admin/paging/escalationpolicy/"


@pytest.fixture
def manager(client, member, org, other_org):
    """A manager of both organisations: the wall between them is the form's to keep."""
    user = member(org, Role.MANAGER, username="boss")
    Membership.objects.create(organization=other_org, user=user, role=Role.MANAGER)
    client.force_login(user)
    return client


def step_form(org, **step) -> dict:
    return {
        "organization": org.pk,
        "slug": "ops",
        "name": "Ops",
        "repeat": 0,
        "steps-TOTAL_FORMS": 1,
        "steps-INITIAL_FORMS": 0,
        "steps-0-position": 0,
        "steps-0-delay": "0",
        **{f"steps-0-{name}": value for name, value in step.items()},
    }


@pytest.mark.django_db
def test_the_admin_saves_a_step_paging_a_schedule_of_the_policys_organisation_only(
    manager, org, other_org
):
    theirs = make_schedule(other_org, "theirs")
    refused = manager.post(f"{POLICIES}add/", step_form(org, schedules=[theirs.pk]))

    assert refused.status_code == 200
    assert "These belong to another organisation: theirs." in refused.content.decode()
    assert not EscalationPolicy.objects.exists()

    ours = make_schedule(org, "primary")
    saved = manager.post(f"{POLICIES}add/", step_form(org, schedules=[ours.pk]))

    assert saved.status_code == 302
    assert EscalationPolicy.objects.get().snapshot().steps[0].schedules == (ours.pk,)


@pytest.mark.django_db
def test_writing_the_same_keys_twice_writes_each_row_once(paged, rota, people):
    """The ledger's unique keys, not the callers, stop a second writer: for a channel's
    row, a person's and a gap's alike."""
    on_call(rota, people["alice"])
    alert = make_alert(paged)
    nobody = make_schedule(paged.organization, "empty-rota")
    channel = EscalationStep.objects.get(policy=paged.escalation_policy).channels.get()
    keys = [
        NotificationKey(step=0, loop=0, reminder=0, channel=channel.pk, event="trigger"),
        NotificationKey(step=0, loop=0, reminder=0, channel=0, event="trigger", schedule=rota.pk),
        NotificationKey(step=0, loop=0, reminder=0, channel=0, event="trigger", schedule=nobody.pk),
    ]
    now = timezone.now()

    engine.write(alert, keys, now)
    engine.write(alert, keys, now)

    assert sorted(Notification.objects.values_list("channel_name", flat=True)) == [
        "empty-rota: nobody on call",
        "ops-slack",
        "primary: alice",
    ]
