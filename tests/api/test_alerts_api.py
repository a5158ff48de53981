"""Alerts through the API: shape, filters, walls, acknowledge and resolve."""

import pytest

from controlplane.alerting import lifecycle
from controlplane.alerting.models import Alert, AlertEvent, AlertRule
from controlplane.catalog.actors import BEAT
from controlplane.catalog.models import ApiToken, Role, Service

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


def fire(rule, fingerprint="f1", **labels) -> Alert:
    alert, created = lifecycle.open_alert(
        rule, fingerprint, labels or {"route": "/pay"}, 0.07, {"summary": "7% fail"}, actor=BEAT
    )
    assert created
    return alert


@pytest.fixture
def alert(rule, django_capture_on_commit_callbacks) -> Alert:
    with django_capture_on_commit_callbacks(execute=True):
        return fire(rule)


def test_alert_json_has_the_promised_shape(api, read_token, alert, settings):
    settings.TRACE_URL_TEMPLATE = "https://grafana.example/explore?trace={trace_id}"
    Alert.objects.filter(pk=alert.pk).update(trace_id="ab" * 16)

    body = api(read_token).get(f"/api/v1/alerts/{alert.pk}/").json()

    assert body["id"] == alert.pk
    assert body["rule"] == "checkout.errors"
    assert body["service"] == "checkout"
    assert (body["state"], body["severity"], body["value"]) == ("firing", "critical", 0.07)
    assert body["labels"] == {"route": "/pay"}
    assert body["annotations"] == {"summary": "7% fail"}
    assert body["started_at"]
    assert body["acknowledged_at"] is None
    assert body["resolved_at"] is None
    assert body["trace_id"] == "ab" * 16
    assert body["trace_url"] == "https://grafana.example/explore?trace=" + "ab" * 16
    assert body["url"] == f"http://testserver/alerts/{alert.pk}/"
    assert (body["is_test"], body["silenced"]) == (False, False)
    assert [(e["kind"], e["actor"]) for e in body["timeline"]] == [("opened", "system:beat")]


def test_list_filters(api, read_token, rule, org):
    other_service = Service.objects.create(organization=org, slug="search", name="Search")
    quiet = AlertRule.objects.create(
        organization=org,
        service=other_service,
        key="search.slow",
        name="S",
        severity="warning",
        expr="alerts.firing",
    )
    firing = fire(rule, "a")
    resolved = fire(rule, "b")
    lifecycle.resolve(resolved, actor=BEAT)
    warning = fire(quiet, "c")
    client = api(read_token)

    def ids(query):
        response = client.get(f"/api/v1/alerts/?{query}")
        assert response.status_code == 200, response.json()
        return {a["id"] for a in response.json()["results"]}

    assert ids("") == {firing.pk, resolved.pk, warning.pk}
    assert ids("state=firing") == {firing.pk, warning.pk}
    assert ids("state=resolved") == {resolved.pk}
    assert ids("severity=warning") == {warning.pk}
    assert ids("service=checkout") == {firing.pk, resolved.pk}
    assert ids("rule=search.slow") == {warning.pk}
    assert ids("rule=search.slow&state=resolved") == set()


def test_unknown_state_filter_is_400(api, read_token, alert):
    response = api(read_token).get("/api/v1/alerts/?state=burning")

    assert response.status_code == 400
    assert "state" in response.json()["errors"]


def test_other_organisations_alerts_are_invisible(api, other_org, alert):
    theirs = ApiToken.issue(other_org, ApiToken.Scope.WRITE)[1]

    assert api(theirs).get("/api/v1/alerts/").json()["results"] == []
    assert api(theirs).get(f"/api/v1/alerts/{alert.pk}/").status_code == 404
    assert api(theirs).post(f"/api/v1/alerts/{alert.pk}/acknowledge/").status_code == 404
    alert.refresh_from_db()
    assert alert.state == "firing"


def test_read_token_cannot_acknowledge(api, read_token, alert):
    response = api(read_token).post(f"/api/v1/alerts/{alert.pk}/acknowledge/")

    assert response.status_code == 403
    alert.refresh_from_db()
    assert alert.state == "firing"


def test_write_token_acknowledges_then_resolves(api, write_token, alert):
    client = api(write_token)
    token_id = ApiToken.objects.get(scope="write").pk

    acked = client.post(f"/api/v1/alerts/{alert.pk}/acknowledge/", {"note": "on it"}, format="json")

    assert acked.status_code == 200, acked.json()
    assert acked.json()["state"] == "acknowledged"
    assert acked.json()["acknowledged_at"]
    event = AlertEvent.objects.get(alert=alert, kind="acknowledged")
    assert f"token:{token_id}" in event.actor
    assert event.note == "on it"

    again = client.post(f"/api/v1/alerts/{alert.pk}/acknowledge/")
    assert again.status_code == 409

    resolved = client.post(f"/api/v1/alerts/{alert.pk}/resolve/")
    assert resolved.status_code == 200
    assert resolved.json()["state"] == "resolved"
    assert resolved.json()["timeline"][-1]["actor"] == f"token:{token_id}"
    assert client.post(f"/api/v1/alerts/{alert.pk}/resolve/").status_code == 409


def test_responder_session_may_acknowledge(client, member, org, alert):
    responder = member(org, Role.RESPONDER)
    client.force_login(responder)

    response = client.post(
        f"/api/v1/alerts/{alert.pk}/acknowledge/", {}, content_type="application/json"
    )

    assert response.status_code == 200
    alert.refresh_from_db()
    assert (alert.state, alert.acknowledged_by) == ("acknowledged", responder)


def test_viewer_session_may_not_acknowledge(client, member, org, alert):
    client.force_login(member(org, Role.VIEWER))

    response = client.post(f"/api/v1/alerts/{alert.pk}/resolve/")

    assert response.status_code == 403
    alert.refresh_from_db()
    assert alert.state == "firing"


def test_alerts_are_not_writable_directly(api, write_token, alert):
    response = api(write_token).patch(
        f"/api/v1/alerts/{alert.pk}/", {"state": "resolved"}, format="json"
    )

    assert response.status_code == 405
    alert.refresh_from_db()
    assert alert.state == "firing"
