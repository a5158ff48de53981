"""An alert's paging on its page and in the admin: the policy version it runs on, its
notifications, and re-applying the current policy, recorded on its timeline."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.db.models import F
from django.utils import timezone

from controlplane.alerting import lifecycle, outbox
from controlplane.alerting.models import Alert, AlertEvent
from controlplane.catalog.actors import BEAT
from controlplane.catalog.models import Role
from controlplane.paging import incident, intake
from controlplane.paging.models import Escalation, EscalationPolicy, Notification
from tests.factories import make_alert, make_channel, make_integration, make_policy, make_rule
from tests.paging.test_alertmanager_intake import am_alert, am_payload

pytestmark = pytest.mark.django_db

ROUTING_KEY = "S" * 32
ALERTS = "/admin/alerting/alert/"


@pytest.fixture
def paged(org):
    """An alert on a policy telling a webhook at once and PagerDuty an hour later."""
    hook = make_channel(
        org, "ops-hook", "webhook", url="https://hooks.example/h", secret="hook-secret-k9-0451"
    )
    pager = make_channel(org, "pager", "pagerduty", routing_key=ROUTING_KEY)
    policy = make_policy(
        org, "ops", name="Ops at night", steps=[(0, [hook]), (timedelta(hours=1), [pager])]
    )
    alert = make_alert(make_rule(org, escalation_policy=policy))
    outbox.drain()
    return alert, policy


def edit(policy: EscalationPolicy, **changes) -> None:
    """An edit as the admin and the API save one: the version goes up."""
    policy.steps.filter(position=1).update(**changes)
    EscalationPolicy.objects.filter(pk=policy.pk).update(version=F("version") + 1)


def text_of(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def paging_part(response) -> str:
    text = text_of(response)
    return text[text.index(" Paging ") : text.index(" Timeline ")]


@pytest.fixture
def responder(client, member, org):
    client.force_login(member(org, Role.RESPONDER, username="alice"))
    return client


@pytest.fixture
def viewer(client, member, org):
    client.force_login(member(org, Role.VIEWER))
    return client


def test_the_page_shows_the_policy_version_and_each_notification(viewer, paged):
    alert, _ = paged
    Notification.objects.filter(alert=alert).update(
        state="failed", attempts=2, last_status=503, last_error="the receiver answered 503"
    )

    section = paging_part(viewer.get(alert.get_absolute_url()))

    assert "Policy Ops at night (ops)" in section
    assert "version 1 · the current version" in section
    assert "ops-hook Webhook Trigger step 1" in section
    assert "Failed (will retry) 2 — the receiver answered 503" in section
    assert "Re-apply" not in section
    # What the configuration keeps secret stays so.
    page = viewer.get(alert.get_absolute_url()).content.decode()
    assert "hook-secret-k9-0451" not in page
    assert ROUTING_KEY not in page


def test_an_edited_policy_is_shown_and_a_responder_re_applies_it(responder, paged):
    alert, policy = paged
    edit(policy, delay=timedelta(0))
    section = paging_part(responder.get(alert.get_absolute_url()))
    assert "version 1 · the policy is at version 2 now" in section
    assert "Re-apply current policy" in section

    response = responder.post(f"/alerts/{alert.pk}/reapply/", follow=True)

    assert "Now on version 2 of the policy (was 1); 1 notification(s)" in text_of(response)
    escalation = Escalation.objects.get(alert=alert)
    assert escalation.policy_version == 2
    assert escalation.reapplied_at is not None
    assert sorted(Notification.objects.values_list("channel_name", flat=True)) == [
        "ops-hook",
        "pager",
    ]
    event = alert.events.get(kind=AlertEvent.Kind.REAPPLIED)
    assert event.note == "version 1 → 2"
    assert event.details == {"previous_version": 1, "version": 2}
    assert "Escalation switched to the current policy by alice — version 1 → 2" in text_of(response)
    assert "version 2 · the current version" in paging_part(response)
    assert "Re-apply" not in paging_part(response)


def test_a_viewer_may_not_re_apply_nor_see_the_button(viewer, paged):
    alert, policy = paged
    edit(policy, delay=timedelta(0))

    assert "Re-apply" not in paging_part(viewer.get(alert.get_absolute_url()))
    assert viewer.post(f"/alerts/{alert.pk}/reapply/").status_code == 403
    assert viewer.get(f"/alerts/{alert.pk}/reapply/").status_code == 405
    assert Escalation.objects.get(alert=alert).policy_version == 1


@pytest.mark.parametrize(
    ("situation", "says"),
    [
        ("current", "The alert already runs on the current version (1)."),
        ("resolved", "The alert is resolved"),
        ("deleted", "The policy this alert runs on was deleted"),
        ("unescalated", "The alert has no escalation"),
    ],
)
def test_nothing_to_re_apply_changes_nothing_and_says_why(responder, paged, situation, says):
    alert, policy = paged
    if situation != "current":
        edit(policy, delay=timedelta(0))
    if situation == "resolved":
        lifecycle.resolve(alert, actor=BEAT)
    if situation == "deleted":
        policy.rules.update(escalation_policy=None)  # rules keep a policy from deletion
        policy.delete()
    if situation == "unescalated":
        Escalation.objects.filter(alert=alert).delete()
    before = list(alert.events.values_list("kind", flat=True))

    response = responder.post(f"/alerts/{alert.pk}/reapply/", follow=True)

    assert f"Nothing re-applied. {says}" in " ".join(text_of(response).split())
    assert list(alert.events.values_list("kind", flat=True)) == before
    assert not Escalation.objects.filter(alert=alert).exclude(policy_version=1).exists()


def test_a_policy_that_cannot_run_is_refused_with_its_reason(paged):
    alert, policy = paged
    policy.steps.all().delete()  # through the ORM, bypassing the checks
    EscalationPolicy.objects.filter(pk=policy.pk).update(version=2)

    with pytest.raises(incident.CannotReapply, match="cannot run"):
        incident.reapply_current(alert, BEAT)

    assert Escalation.objects.get(alert=alert).policy_version == 1
    assert not alert.events.filter(kind=AlertEvent.Kind.REAPPLIED).exists()


def test_an_alert_nobody_is_paged_for_says_so(viewer, org):
    alert = make_alert(make_rule(org))
    outbox.drain()

    section = paging_part(viewer.get(alert.get_absolute_url()))

    assert "Nobody is paged for this alert" in section


def test_the_page_lists_the_latest_notifications_in_bounded_queries(
    viewer, paged, django_assert_max_num_queries
):
    alert, _ = paged
    row = Notification.objects.get(alert=alert)
    now = timezone.now()
    Notification.objects.bulk_create(
        [
            Notification(
                organization_id=row.organization_id,
                alert=alert,
                channel=row.channel,
                channel_name=row.channel_name,
                channel_kind=row.channel_kind,
                step=-1,
                reminder=n,
                event="reminder",
                created_at=now + timedelta(seconds=n),
            )
            for n in range(1, incident.LATEST_SHOWN + 5)
        ]
    )

    # Session, user, memberships, the alert, its timeline, its escalation, its ledger.
    with django_assert_max_num_queries(7):
        response = viewer.get(alert.get_absolute_url())

    section = paging_part(response)
    assert section.count(" Reminder ") == incident.LATEST_SHOWN
    assert f"#{incident.LATEST_SHOWN + 4} " in section
    assert " Trigger " not in section  # the oldest, past the latest 50
    assert f"GET /api/v1/notifications/?alert={alert.pk}" in section


def test_the_admin_shows_the_notifications_and_re_applies(client, member, org, paged):
    alert, policy = paged
    client.force_login(member(org, Role.RESPONDER))
    edit(policy, delay=timedelta(0))

    page = client.get(f"{ALERTS}{alert.pk}/change/").content.decode()
    inline = page[page.index('id="notifications-group"') :]
    assert "ops-hook" in inline
    assert "Pending" in inline

    response = client.post(
        ALERTS, {"action": "reapply_current_policy", "_selected_action": [alert.pk]}, follow=True
    )

    assert "1 alert(s) switched to the current policy." in response.content.decode()
    assert Escalation.objects.get(alert=alert).policy_version == 2
    assert alert.events.filter(kind=AlertEvent.Kind.REAPPLIED).count() == 1

    again = client.post(
        ALERTS, {"action": "reapply_current_policy", "_selected_action": [alert.pk]}, follow=True
    )
    assert "already runs on the current version (2)" in again.content.decode()
    assert alert.events.filter(kind=AlertEvent.Kind.REAPPLIED).count() == 1


def test_a_viewer_has_no_re_apply_action(client, member, org, paged):
    alert, policy = paged
    client.force_login(member(org, Role.VIEWER))
    edit(policy, delay=timedelta(0))

    client.post(ALERTS, {"action": "reapply_current_policy", "_selected_action": [alert.pk]})

    assert Escalation.objects.get(alert=alert).policy_version == 1


@pytest.mark.parametrize(
    ("runbook", "link"),
    [
        (
            "https://wiki.example/runbooks/high-latency?a=1&b=2",
            "https://wiki.example/runbooks/high-latency?a=1&amp;b=2",
        ),
        ("javascript:alert(1)", None),
    ],
)
def test_an_alert_from_alertmanager_names_its_source_and_links_its_runbook(
    viewer, org, runbook, link
):
    integration, _ = make_integration(org, name="Prod Alertmanager")
    body = am_payload(am_alert(annotations={"summary": "slow", "runbook_url": runbook}))
    intake.receive(integration, json.dumps(body).encode(), intake.actor_of(integration))
    alert = Alert.objects.get()

    page = viewer.get(f"/alerts/{alert.pk}/").content.decode()

    assert "Alertmanager (Prod Alertmanager)" in page
    if link is None:
        assert 'class="runbook-link"' not in page
        assert "javascript:" not in page.split("<h2>Annotations</h2>")[0]
    else:
        assert f'<a class="runbook-link" href="{link}"' in page
