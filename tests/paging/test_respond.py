"""The one-click link's pages: a GET only asks, a POST acts once, every refusal is a
page of its own that changes nothing; and the links the engine writes into messages,
followed from what real receivers got, acknowledge the alert and tell PagerDuty."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.test import Client
from django.utils import timezone

from controlplane.alerting import lifecycle, outbox
from controlplane.alerting.models import Alert, AlertEvent
from controlplane.catalog.actors import BEAT
from controlplane.paging import engine, links
from controlplane.paging.links import LIFETIME, Action, Link
from controlplane.paging.models import Notification
from tests.factories import make_alert, make_channel, make_policy, make_rule

pytestmark = pytest.mark.django_db

ROUTING_KEY = "R" * 32
SUMMARY = "queue <b>deep</b> & rising"


@pytest.fixture
def hooked(org):
    """A rule whose policy tells a webhook at once; its alert's trigger row written."""
    hook = make_channel(
        org, "ops-hook", "webhook", url="https://hooks.example/h", secret="hook-secret-0451"
    )
    rule = make_rule(org, "queue.depth", escalation_policy=make_policy(org, steps=[(0, [hook])]))
    alert = make_alert(rule, annotations={"summary": SUMMARY})
    outbox.drain()
    return alert, Notification.objects.get(alert=alert)


def path_of(alert, row, action=Action.ACKNOWLEDGE, issued=None, alert_id=None) -> str:
    link = Link(alert.pk, row.pk, action, issued or timezone.now())
    return f"/alerts/{alert_id or alert.pk}/respond/{links.issue(link)}/"


def events(alert) -> list[tuple[str, str]]:
    return list(alert.events.order_by("pk").values_list("kind", "actor"))


def state(alert) -> str:
    return Alert.objects.values_list("state", flat=True).get(pk=alert.pk)


def test_a_get_asks_and_changes_nothing_however_often(client, hooked):
    alert, row = hooked
    path = path_of(alert, row)

    answers = [client.get(path) for _ in range(3)]

    assert [a.status_code for a in answers] == [200] * 3
    page = answers[0].content.decode()
    assert "Acknowledge this alert?" in page
    assert f'<form class="respond" method="post" action="{path}">' in page
    assert 'name="csrfmiddlewaretoken"' in page
    assert "ops-hook" in page
    assert state(alert) == "firing"
    assert events(alert) == [("opened", BEAT.spec)]


def test_the_page_escapes_what_the_alert_says_and_keeps_to_the_policy(client, hooked):
    alert, row = hooked

    response = client.get(path_of(alert, row))

    page = response.content.decode()
    assert "queue &lt;b&gt;deep&lt;/b&gt; &amp; rising" in page
    assert "<b>deep</b>" not in page
    assert "<script" not in page
    assert "style=" not in page
    assert "Content-Security-Policy" in response.headers
    assert "no-store" in response["Cache-Control"]
    assert response["X-Robots-Tag"] == "noindex, nofollow"
    assert response["Referrer-Policy"] == "same-origin"  # the token stays on this site
    assert "hook-secret-0451" not in page


def test_a_post_acknowledges_in_the_name_of_the_link_then_offers_to_resolve(client, hooked):
    alert, row = hooked

    response = client.post(path_of(alert, row))

    assert response.status_code == 200
    assert "Acknowledged" in response.content.decode()
    alert.refresh_from_db()
    assert (alert.state, alert.acknowledged_by) == ("acknowledged", None)
    assert events(alert)[-1] == ("acknowledged", f"link:{row.pk}.ops-hook")
    # The page's form is the same link, to resolve.
    [resolve] = re.findall(r'action="([^"]+)"', response.content.decode())
    assert links.read(resolve.split("/")[-2], alert.pk, timezone.now()).action == Action.RESOLVE

    assert client.post(resolve).status_code == 200

    assert state(alert) == "resolved"
    assert events(alert)[-1] == ("resolved", f"link:{row.pk}.ops-hook")


def test_the_alert_page_names_the_link_as_the_acknowledger(client, hooked, member, org):
    alert, row = hooked
    client.post(path_of(alert, row))
    client.force_login(member(org))

    page = re.sub(r"<[^>]+>", "", client.get(alert.get_absolute_url()).content.decode())

    facts, timeline = page.split("Labels", 1)[0], page.split("Timeline", 1)[1]
    assert "by ops-hook (one-click link)" in facts
    assert "Acknowledged by ops-hook (one-click link)" in timeline


@pytest.mark.parametrize("method", ["get", "post"])
def test_an_acknowledged_alert_is_a_409_naming_who_and_changes_nothing(client, hooked, method):
    alert, row = hooked
    lifecycle.acknowledge(alert, BEAT)

    response = getattr(client, method)(path_of(alert, row))

    assert response.status_code == 409
    assert "It was acknowledged at" in response.content.decode()
    assert "by system (beat)" in response.content.decode()
    assert [kind for kind, _ in events(alert)] == ["opened", "acknowledged"]


@pytest.mark.parametrize("action", list(Action))
def test_a_resolved_alert_is_a_409_for_either_action(client, hooked, action):
    alert, row = hooked
    lifecycle.resolve(alert, actor=BEAT)

    for method in (client.get, client.post):
        response = method(path_of(alert, row, action))
        assert response.status_code == 409
        assert "It was resolved at" in response.content.decode()
    assert [kind for kind, _ in events(alert)] == ["opened", "resolved"]


def test_a_resolve_link_resolves_an_acknowledged_alert(client, hooked):
    alert, row = hooked
    lifecycle.acknowledge(alert, BEAT)
    path = path_of(alert, row, Action.RESOLVE)

    assert "Resolve this alert?" in client.get(path).content.decode()
    assert client.post(path).status_code == 200
    assert state(alert) == "resolved"


@pytest.mark.parametrize("method", ["get", "post"])
def test_an_expired_link_is_a_410_that_shows_nothing_of_the_alert(client, hooked, method):
    alert, row = hooked
    issued = timezone.now() - LIFETIME - timedelta(minutes=1)

    response = getattr(client, method)(path_of(alert, row, issued=issued))

    assert response.status_code == 410
    page = response.content.decode()
    assert "This link has expired" in page
    assert f'href="{alert.get_absolute_url()}"' in page
    assert "deep" not in page
    assert state(alert) == "firing"


@pytest.mark.parametrize("method", ["get", "post"])
def test_a_tampered_link_is_a_400_and_changes_nothing(client, hooked, method):
    alert, row = hooked
    path = path_of(alert, row)
    tampered = path[:-2] + ("A" if path[-2] != "A" else "B") + "/"

    response = getattr(client, method)(tampered)

    assert response.status_code == 400
    assert "This link is not valid" in response.content.decode()
    assert "deep" not in response.content.decode()
    assert state(alert) == "firing"


@pytest.mark.parametrize("method", ["get", "post"])
def test_a_link_of_another_alert_opens_nothing_of_either(client, org, hooked, method):
    alert, row = hooked
    other = make_alert(alert.rule, "fp-2", annotations={"summary": "the other one"})

    response = getattr(client, method)(path_of(alert, row, alert_id=other.pk))

    assert response.status_code == 400
    page = response.content.decode()
    assert "deep" not in page
    assert "the other one" not in page
    assert state(alert) == state(other) == "firing"


def test_the_link_of_a_deleted_alert_is_a_404(client, hooked):
    alert, row = hooked
    path = path_of(alert, row)
    Alert.objects.filter(pk=alert.pk).delete()

    assert client.get(path).status_code == 404
    assert client.post(path).status_code == 404


def test_the_post_needs_the_csrf_token_of_the_page(hooked):
    alert, row = hooked
    path = path_of(alert, row)
    browser = Client(enforce_csrf_checks=True)

    assert browser.post(path).status_code == 403
    assert state(alert) == "firing"

    page = browser.get(path).content.decode()
    [token] = re.findall(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert browser.post(path, {"csrfmiddlewaretoken": token}).status_code == 200
    assert state(alert) == "acknowledged"


@pytest.mark.parametrize("method", ["put", "delete", "head"])
def test_only_get_and_post(client, hooked, method):
    alert, row = hooked

    assert getattr(client, method)(path_of(alert, row)).status_code == 405
    assert state(alert) == "firing"


# --- what the engine writes into messages ----------------------------------------------


@pytest.mark.parametrize(
    ("event", "linked"),
    [("trigger", True), ("reminder", True), ("acknowledge", False), ("resolve", False)],
)
def test_only_a_trigger_or_a_reminder_carries_a_link(hooked, event, linked):
    alert, row = hooked
    row.event = event

    url = engine.acknowledge_url(row)

    assert bool(url) is linked
    if linked:
        token = urlsplit(url).path.split("/")[-2]
        link = links.read(token, alert.pk, timezone.now())
        assert (link.notification_id, link.action) == (row.pk, Action.ACKNOWLEDGE)


def test_a_channel_test_carries_no_link(org):
    channel = make_channel(org, "ops-hook", "webhook", url="https://hooks.example/h")
    engine.send_test([channel])

    assert engine.acknowledge_url(Notification.objects.get()) == ""


def _slack_link(body) -> str:
    text = "\n".join(
        block["text"]["text"] for block in body["blocks"] if block["type"] == "section"
    )
    [url] = re.findall(r"<([^|>]+)\|Acknowledge>", text)
    return url.replace("&amp;", "&")


def _email_link(message) -> str:
    text = message.get_body(("plain",)).get_content()
    [url] = re.findall(r"Acknowledge:\s+(\S+)", text)
    return url


def test_a_delivered_link_acknowledges_and_pagerduty_hears_of_it(
    client, org, slack_receiver, pagerduty_receiver, email_to_receiver, settings
):
    settings.SITE_URL = "https://cp.example.com"
    slack = make_channel(org, "ops-slack", "slack", url=f"{slack_receiver.url}/hooks/T/B/X")
    mail = make_channel(org, "ops-mail", "email", to=["oncall@example.com"])
    pager = make_channel(
        org,
        "pager",
        "pagerduty",
        routing_key=ROUTING_KEY,
        url=f"{pagerduty_receiver.url}/v2/enqueue",
    )
    policy = make_policy(org, steps=[(0, [slack, mail, pager])], notify_on_resolve=True)
    alert = make_alert(make_rule(org, escalation_policy=policy))
    outbox.drain()
    engine.deliver_due()

    [slack_message] = slack_receiver.requests
    [email] = email_to_receiver.messages
    [trigger] = pagerduty_receiver.requests
    assert slack_message.valid, slack_message.problems
    assert trigger.valid, trigger.problems
    found = {
        "ops-slack": _slack_link(slack_message.body),
        "ops-mail": _email_link(email.message),
        "pager": trigger.body["payload"]["custom_details"]["acknowledge_url"],
    }
    rows = dict(Notification.objects.values_list("channel_name", "pk"))
    for channel, url in found.items():
        assert url.startswith(f"https://cp.example.com/alerts/{alert.pk}/respond/"), url
        link = links.read(urlsplit(url).path.split("/")[-2], alert.pk, timezone.now())
        assert link.notification_id == rows[channel], "each message carries its own link"

    path = urlsplit(found["ops-slack"]).path
    assert client.get(path).status_code == 200
    assert state(alert) == "firing"
    assert client.post(path).status_code == 200
    assert state(alert) == "acknowledged"
    assert client.get(urlsplit(found["ops-mail"]).path).status_code == 409

    outbox.drain()
    engine.deliver_due()

    actions = [(r.body["event_action"], r.body["dedup_key"]) for r in pagerduty_receiver.requests]
    assert actions == [
        ("trigger", trigger.body["dedup_key"]),
        ("acknowledge", trigger.body["dedup_key"]),
    ]
    assert len(slack_receiver.requests) == 1, "Slack hears nothing of an acknowledge"
    assert AlertEvent.objects.filter(
        alert=alert, kind="acknowledged", actor=f"link:{rows['ops-slack']}.ops-slack"
    ).exists()

    # A resolve (notify_on_resolve) tells every channel told, with no link to follow.
    lifecycle.resolve(alert, actor=BEAT)
    outbox.drain()
    engine.deliver_due()
    assert len(slack_receiver.requests) == 2
    assert "Acknowledge" not in slack_receiver.requests[1].raw.decode()
    assert pagerduty_receiver.requests[-1].body["event_action"] == "resolve"
