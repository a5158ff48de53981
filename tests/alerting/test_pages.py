"""The alert pages: walls, order, filters, bounded queries, and responding."""

import datetime
import re

import pytest
from django.utils import timezone

from controlplane.alerting import lifecycle
from controlplane.alerting.models import Alert, AlertRule
from controlplane.catalog.actors import BEAT, Actor
from controlplane.catalog.models import Role
from runbooks.models import Runbook

pytestmark = pytest.mark.django_db


@pytest.fixture
def rule(org, service) -> AlertRule:
    return AlertRule.objects.create(
        organization=org,
        service=service,
        key="checkout.errors",
        name="Checkout fails",
        severity="critical",
        expr="alerts.firing",
    )


def fire(rule, fingerprint, **labels) -> Alert:
    summary = {"summary": f"{fingerprint} hot"}
    return lifecycle.open_alert(rule, fingerprint, labels, 1.5, summary, actor=BEAT)[0]


@pytest.fixture
def viewer(client, member, org):
    client.force_login(member(org, Role.VIEWER))
    return client


def test_list_needs_a_login(client):
    response = client.get("/alerts/")

    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_open_alerts_come_first_then_recently_resolved(viewer, rule):
    old_resolved = fire(rule, "old")
    lifecycle.resolve(old_resolved, actor=BEAT)
    Alert.objects.filter(pk=old_resolved.pk).update(
        resolved_at=timezone.now() - timezone.timedelta(days=30)
    )
    resolved = fire(rule, "done")
    lifecycle.resolve(resolved, actor=BEAT)
    acked = fire(rule, "acked")
    lifecycle.acknowledge(acked, Actor.user(viewer_user(viewer)))
    fire(rule, "firing")

    content = viewer.get("/alerts/").content.decode()

    positions = [content.index(f"{name} hot") for name in ("firing", "acked", "done")]
    assert positions == sorted(positions)
    assert "old hot" not in content


def viewer_user(client):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get(pk=client.session["_auth_user_id"])


def test_list_filters_by_state_severity_service_and_rule(viewer, rule, org):
    other = AlertRule.objects.create(
        organization=org, key="queue.deep", name="Q", severity="warning", expr="alerts.firing"
    )
    fire(rule, "crit")
    fire(other, "warn")

    def shown(query):
        content = viewer.get(f"/alerts/?{query}").content.decode()
        return {name for name in ("crit", "warn") if f"{name} hot" in content}

    assert shown("") == {"crit", "warn"}
    assert shown("severity=warning") == {"warn"}
    assert shown("service=checkout") == {"crit"}
    assert shown("rule=queue.deep") == {"warn"}
    assert shown("state=resolved") == set()
    assert shown("state=nonsense") == {"crit", "warn"}  # an unknown value is ignored


def test_list_hides_other_organisations(viewer, other_org):
    theirs = AlertRule.objects.create(
        organization=other_org, key="x", name="X", expr="alerts.firing"
    )
    fire(theirs, "secret")

    assert "secret hot" not in viewer.get("/alerts/").content.decode()


def test_list_query_count_does_not_grow_with_alerts(viewer, rule, django_assert_max_num_queries):
    for n in range(30):
        fire(rule, f"a{n}", n=str(n))

    with django_assert_max_num_queries(8):
        response = viewer.get("/alerts/")

    assert response.content.decode().count(" hot") == 30


def test_detail_shows_the_alert_with_runbook_trace_and_timeline(viewer, rule, settings):
    runbook = Runbook.objects.create(
        slug="checkout-errors", title="When checkout fails", summary="s", body="b", owner="sre"
    )
    AlertRule.objects.filter(pk=rule.pk).update(runbook=runbook)
    alert = fire(rule.__class__.objects.get(pk=rule.pk), "one", route="/pay")
    Alert.objects.filter(pk=alert.pk).update(trace_id="cd" * 16)
    settings.TRACE_URL_TEMPLATE = "https://tempo.example/trace/{trace_id}"

    content = viewer.get(f"/alerts/{alert.pk}/").content.decode()

    assert "one hot" in content
    assert 'route="/pay"' in content
    assert 'href="/runbooks/checkout-errors/"' in content
    assert f'href="https://tempo.example/trace/{"cd" * 16}"' in content
    assert "Opened (firing)" in content
    assert "Acknowledge" not in content  # a viewer gets no buttons


def test_detail_without_trace_template_shows_the_id_as_text(viewer, rule, settings):
    settings.TRACE_URL_TEMPLATE = ""
    alert = fire(rule, "one")
    Alert.objects.filter(pk=alert.pk).update(trace_id="ef" * 16)

    content = viewer.get(f"/alerts/{alert.pk}/").content.decode()

    assert f"<code>{'ef' * 16}</code>" in content
    assert "tempo" not in content


def test_detail_query_count_is_bounded(viewer, rule, django_assert_max_num_queries):
    alert = fire(rule, "one")
    for _ in range(10):
        lifecycle.acknowledge(alert, Actor.user(viewer_user(viewer)))
        Alert.objects.filter(pk=alert.pk).update(state="firing")

    with django_assert_max_num_queries(8):
        response = viewer.get(f"/alerts/{alert.pk}/")

    assert response.status_code == 200
    assert f"<h1>{alert.rule_key} " in response.content.decode()


def test_another_organisations_alert_is_404(viewer, other_org):
    theirs = AlertRule.objects.create(
        organization=other_org, key="x", name="X", expr="alerts.firing"
    )
    alert = fire(theirs, "secret")

    assert viewer.get(f"/alerts/{alert.pk}/").status_code == 404
    assert viewer.post(f"/alerts/{alert.pk}/resolve/").status_code == 404


def test_responder_acknowledges_and_resolves_from_the_page(client, member, org, rule):
    responder = member(org, Role.RESPONDER)
    client.force_login(responder)
    alert = fire(rule, "one")
    assert "Acknowledge" in client.get(f"/alerts/{alert.pk}/").content.decode()

    response = client.post(f"/alerts/{alert.pk}/acknowledge/")

    assert response.status_code == 302
    alert.refresh_from_db()
    assert (alert.state, alert.acknowledged_by) == ("acknowledged", responder)
    client.post(f"/alerts/{alert.pk}/resolve/")
    alert.refresh_from_db()
    assert alert.state == "resolved"
    assert alert.events.last().actor == f"user:{responder.pk}"


def test_viewer_may_not_acknowledge(viewer, rule):
    alert = fire(rule, "one")

    assert viewer.post(f"/alerts/{alert.pk}/acknowledge/").status_code == 403
    alert.refresh_from_db()
    assert alert.state == "firing"


def test_acknowledge_needs_post(client, member, org, rule):
    client.force_login(member(org, Role.RESPONDER))
    alert = fire(rule, "one")

    assert client.get(f"/alerts/{alert.pk}/acknowledge/").status_code == 405


def test_acknowledge_needs_the_csrf_token(member, org, rule):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(member(org, Role.RESPONDER))
    alert = fire(rule, "one")

    assert client.post(f"/alerts/{alert.pk}/acknowledge/").status_code == 403
    alert.refresh_from_db()
    assert alert.state == "firing"


def test_runbook_page_lists_the_rules_citing_it_within_the_walls(viewer, rule, other_org):
    runbook = Runbook.objects.create(
        slug="checkout-errors", title="When checkout fails", summary="s", body="b", owner="sre"
    )
    AlertRule.objects.filter(pk=rule.pk).update(runbook=runbook)
    AlertRule.objects.create(
        organization=other_org,
        key="their.rule",
        name="Theirs",
        expr="alerts.firing",
        runbook=runbook,
    )

    content = viewer.get("/runbooks/checkout-errors/").content.decode()

    assert "checkout.errors" in content
    assert "their.rule" not in content


@pytest.mark.parametrize(
    "path", ["/alerts/?service=%00", "/alerts/?rule=%00", "/alerts/?state=fir%00ing"]
)
def test_nul_in_the_url_is_a_400_page(viewer, path):
    response = viewer.get(path)

    assert response.status_code == 400
    assert "NUL character" in response.content.decode()


@pytest.mark.parametrize("action", ["acknowledge", "resolve"])
def test_a_note_with_nul_changes_nothing(client, member, org, rule, action):
    client.force_login(member(org, Role.RESPONDER))
    alert = fire(rule, "one")

    response = client.post(f"/alerts/{alert.pk}/{action}/", {"note": "on it\x00"}, follow=True)

    assert response.status_code == 200
    assert "NUL character" in response.content.decode()
    alert.refresh_from_db()
    assert alert.state == Alert.State.FIRING
    assert [event.kind for event in alert.events.all()] == ["opened"]


def page_text(response) -> str:
    """The page as a reader sees it: markup dropped."""
    return re.sub(r"<[^>]+>", "", response.content.decode())


def test_timeline_names_users_tokens_and_the_system(viewer, rule, member, org):
    alert = fire(rule, "one")
    responder = member(org, Role.RESPONDER, username="alice")
    lifecycle.acknowledge(alert, Actor.user(responder), note="on it")
    lifecycle.resolve(alert, actor=Actor.parse("token:3"), note="recovered")
    alert.events.create(kind="acknowledged", actor="user:999999")

    text = page_text(viewer.get(f"/alerts/{alert.pk}/"))

    assert "by system (beat)" in text
    assert "by alice" in text
    assert "by API token #3" in text
    assert "by user #999999" in text  # a deleted user keeps their id
    assert f"user:{responder.pk}" not in text


@pytest.mark.parametrize(
    ("actor", "shown"),
    [
        ("user:{alice}", "alice"),
        ("user:999999", "user #999999"),
        ("user:²", "user:²"),
        ("token:{token}", "API token 'grafana' (#{token})"),
        ("token:424242", "API token #424242"),
        ("system:beat", "system (beat)"),
        ("system:", "system:"),
        ("link:17.ops-slack", "ops-slack (one-click link)"),
        ("link:17.ops.slack", "ops.slack (one-click link)"),
        ("link:17.", "link:17."),
        ("link:x.ops-slack", "link:x.ops-slack"),
        ("someone", "someone"),
    ],
)
def test_actor_label(org, member, actor, shown):
    from controlplane.catalog import actors
    from controlplane.catalog.models import ApiToken

    ids = {"alice": member(org, "responder", "alice").pk}
    ids["token"] = ApiToken.issue(org, "read", "grafana")[0].pk
    spec, expected = actor.format(**ids), shown.format(**ids)

    assert actors.labels([spec]) == {spec: expected}


def test_detail_names_many_users_in_one_query(
    viewer, rule, member, org, django_assert_max_num_queries
):
    alert = fire(rule, "one")
    for n in range(6):
        user = member(org, Role.RESPONDER, username=f"responder{n}")
        lifecycle.acknowledge(alert, Actor.user(user))
        Alert.objects.filter(pk=alert.pk).update(state="firing")

    with django_assert_max_num_queries(8):
        text = page_text(viewer.get(f"/alerts/{alert.pk}/"))

    assert all(f"by responder{n}" in text for n in range(6))


def test_times_carry_their_zone(viewer, rule, settings):
    settings.TIME_ZONE = "Europe/Paris"
    alert = fire(rule, "one")
    winter_noon = datetime.datetime(2026, 1, 15, 12, 0, tzinfo=datetime.UTC)
    Alert.objects.filter(pk=alert.pk).update(started_at=winter_noon)

    detail = viewer.get(f"/alerts/{alert.pk}/").content.decode()
    listing = viewer.get("/alerts/").content.decode()

    assert "15 Jan 2026 13:00:00 CET" in detail
    assert 'Started <span class="muted">(Europe/Paris)</span>' in listing


def test_responder_gets_a_note_field_and_the_note_is_kept(client, member, org, rule):
    client.force_login(member(org, Role.RESPONDER))
    alert = fire(rule, "one")
    page = client.get(f"/alerts/{alert.pk}/").content.decode()
    assert 'name="note"' in page

    client.post(f"/alerts/{alert.pk}/acknowledge/", {"note": "  rolling back  "})
    client.post(f"/alerts/{alert.pk}/resolve/", {"note": "x" * 1500})

    notes = [event.note for event in alert.events.all()]
    assert notes == ["", "rolling back", "x" * 1000]
    assert "rolling back" in client.get(f"/alerts/{alert.pk}/").content.decode()


def test_a_viewers_forbidden_post_gets_the_explaining_page(viewer, rule):
    alert = fire(rule, "one")

    response = viewer.post(f"/alerts/{alert.pk}/resolve/")

    assert response.status_code == 403
    content = response.content.decode()
    assert "<h1>Not allowed</h1>" in content
    assert "Only responders and managers" in content
    assert 'href="/alerts/"' in content  # inside the site's frame, with a way back
