"""Rules, alerts and silences in the admin: walls, validation and actions."""

from datetime import timedelta

import pytest
from django.utils import timezone

from controlplane.alerting import lifecycle
from controlplane.alerting.models import Alert, AlertRule, Silence
from controlplane.catalog.actors import BEAT
from controlplane.catalog.models import Membership, MetricSource, Role
from tests.factories import make_rule
from tests.integration.prometheus import T0, prometheus_factory  # noqa: F401
from tests.services import free_port

pytestmark = pytest.mark.django_db

RULES = "/admin/alerting/alertrule/"
ALERTS = "/admin/alerting/alert/"
SILENCES = "/admin/alerting/silence/"


@pytest.fixture(scope="session")
def prometheus(prometheus_factory):  # noqa: F811
    # A gauge that is 5 from T0 on: "queue_depth > 3" breaches.
    return prometheus_factory({'queue_depth{queue="mail"}': [(T0, 5)]})


@pytest.fixture
def source(org, prometheus) -> MetricSource:
    return MetricSource.objects.create(organization=org, name="main", url=prometheus.url)


@pytest.fixture
def manager(client, member, org):
    client.force_login(member(org, Role.MANAGER))
    return client


def form(org, service, source, **changes) -> dict:
    data = {
        "organization": org.pk,
        "key": "queue.deep",
        "name": "Mail queue is deep",
        "service": service.pk,
        "severity": "warning",
        "source": source.pk if source else "",
        "expr": "queue_depth",
        "op": ">",
        "threshold": "3",
        "for_duration": "0s",
        "keep_firing_for": "5m",
        "interval": "1m",
        "labels": '{"team": "mail"}',
        "annotations": '{"summary": "{{ $value }} waiting"}',
        "runbook": "",
        "enabled": "on",
    }
    data.update(changes)
    return data


def test_manager_adds_a_verified_rule(manager, org, service, source):
    response = manager.post(f"{RULES}add/", form(org, service, source))

    assert response.status_code == 302, response.context["adminform"].form.errors
    rule = AlertRule.objects.get(organization=org, key="queue.deep")
    assert rule.keep_firing_for == timedelta(minutes=5)
    assert rule.verification == AlertRule.Verification.VERIFIED


def test_a_rule_cannot_be_moved_to_another_organisation(
    client, member, org, other_org, service, source
):
    # Its alerts' identity holds its organisation: moved, they would fire for ever.
    user = member(org, Role.MANAGER)
    Membership.objects.create(organization=other_org, user=user, role=Role.MANAGER)
    client.force_login(user)
    rule = make_rule(org, source=source)
    data = form(org, service, source, key=rule.key, organization=other_org.pk)

    response = client.post(f"{RULES}{rule.pk}/change/", data)

    assert response.status_code == 302
    rule.refresh_from_db()
    assert rule.organization == org
    page = client.get(f"{RULES}{rule.pk}/change/").content.decode()
    assert 'name="organization"' not in page


def test_bad_promql_is_refused_with_prometheus_message(manager, org, service, source):
    response = manager.post(f"{RULES}add/", form(org, service, source, expr="rate(queue_depth[5m]"))

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["expr"]
    assert errors[0].startswith("Prometheus refused the expression:")
    assert "parse error" in errors[0]
    assert not AlertRule.objects.filter(key="queue.deep").exists()


def test_unreachable_source_saves_unverified(manager, org, service):
    gone = MetricSource.objects.create(
        organization=org, name="gone", url=f"http://127.0.0.1:{free_port()}", timeout=1
    )

    response = manager.post(f"{RULES}add/", form(org, service, gone))

    assert response.status_code == 302
    rule = AlertRule.objects.get(key="queue.deep")
    assert rule.verification == AlertRule.Verification.UNVERIFIED
    assert rule.verification_note.startswith("Not checked")


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("for_duration", "-1m", "negative"),
        ("interval", "soon", "not valid"),
        ("threshold", "lots", "number"),
        ("annotations", '{"summary": "{{ $value | nosuch }}"}', "summary"),
        ("labels", '["not", "an", "object"]', "Labels"),
    ],
)
def test_bad_fields_are_refused(manager, org, service, source, field, value, words):
    response = manager.post(f"{RULES}add/", form(org, service, source, **{field: value}))

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert field in errors
    assert words in " ".join(errors[field])
    assert not AlertRule.objects.filter(key="queue.deep").exists()


def test_rule_list_shows_state_and_last_value_and_hides_other_orgs(manager, org, other_org):
    make_rule(org, "ours", evaluation={"state": "firing", "last_value": 42.5})
    AlertRule.objects.create(organization=other_org, key="theirs", name="T", expr="alerts.firing")

    content = manager.get(RULES).content.decode()

    assert "ours" in content
    assert "42.5" in content
    assert "Firing" in content
    assert "theirs" not in content


def test_rule_list_filters_and_search(manager, org):
    AlertRule.objects.create(
        organization=org, key="loud", name="L", severity="critical", expr="alerts.firing"
    )
    AlertRule.objects.create(
        organization=org,
        key="quiet",
        name="Q",
        severity="info",
        expr="alerts.firing",
        enabled=False,
    )

    assert listed(manager, f"{RULES}?severity__exact=critical") == {
        "loud",
        "source.down",
        "calendar.queue",
        "etl.job.failure",
        "audit.job.failure",
    }
    assert listed(manager, f"{RULES}?enabled__exact=0") == {"quiet"}
    assert listed(manager, f"{RULES}?builtin__exact=0") == {"loud", "quiet"}
    assert listed(manager, f"{RULES}?q=quiet") == {"quiet"}


def listed(client, url) -> set[str]:
    response = client.get(url)
    assert response.status_code == 200
    return {str(row) for row in response.context["cl"].result_list}


def test_evaluate_now_evaluates_and_reports(manager, org, service, source):
    rule = AlertRule.objects.create(
        organization=org,
        service=service,
        key="queue.deep",
        name="Q",
        source=source,
        expr="queue_depth",
        op=">",
        threshold=3,
    )

    # Backfilled data lies in the past; "now" sees nothing, so the rule stays inactive.
    response = manager.post(
        RULES, {"action": "evaluate_now", "_selected_action": [rule.pk]}, follow=True
    )

    rule.refresh_from_db()
    assert rule.evaluation.last_evaluated_at is not None
    assert rule.evaluation.state == AlertRule.State.INACTIVE
    assert "Evaluated 1 rule(s): 1 ok" in response.content.decode()


def test_test_fire_opens_one_test_alert_apart_from_real_ones(manager, org, service, source):
    rule = AlertRule.objects.create(
        organization=org,
        service=service,
        key="queue.deep",
        name="Q",
        source=source,
        expr="queue_depth",
        op=">",
        threshold=3,
        labels={"team": "mail"},
        annotations={"summary": "{{ $value }} waiting"},
    )
    real = lifecycle.open_alert(rule, "real-instance", {"queue": "mail"}, 5, {}, actor=BEAT)[0]

    manager.post(RULES, {"action": "test_fire", "_selected_action": [rule.pk]})
    response = manager.post(
        RULES, {"action": "test_fire", "_selected_action": [rule.pk]}, follow=True
    )

    test_alert = Alert.objects.get(is_test=True)
    assert test_alert.fingerprint != real.fingerprint
    assert test_alert.labels == {"team": "mail", "test": "true"}
    assert test_alert.actor == f"user:{response.context['user'].pk}"
    assert test_alert.annotations == {"summary": "3 waiting"}
    assert "already had an open test alert" in response.content.decode()


def test_viewer_cannot_run_rule_actions(client, member, org, service, source):
    client.force_login(member(org, Role.VIEWER))
    rule = AlertRule.objects.create(
        organization=org,
        key="queue.deep",
        name="Q",
        source=source,
        expr="queue_depth",
        op=">",
        threshold=3,
    )

    client.post(RULES, {"action": "test_fire", "_selected_action": [rule.pk]})

    assert not Alert.objects.exists()


@pytest.fixture
def alert(org, service):
    rule = AlertRule.objects.create(
        organization=org, service=service, key="k", name="K", expr="alerts.firing"
    )
    return lifecycle.open_alert(rule, "fp", {"route": "/pay"}, 1.0, {}, actor=BEAT)[0]


def test_alert_page_shows_the_timeline_read_only(manager, alert):
    page = manager.get(f"{ALERTS}{alert.pk}/change/")

    assert page.status_code == 200
    content = page.content.decode()
    assert "Opened (firing)" in content
    assert 'name="_save"' not in content  # not editable by hand
    assert manager.get(f"{ALERTS}add/").status_code == 403


def test_responder_acknowledges_and_resolves_through_actions(client, member, org, alert):
    responder = member(org, Role.RESPONDER)
    client.force_login(responder)

    client.post(ALERTS, {"action": "acknowledge", "_selected_action": [alert.pk]})
    alert.refresh_from_db()
    assert (alert.state, alert.acknowledged_by) == ("acknowledged", responder)

    client.post(ALERTS, {"action": "resolve", "_selected_action": [alert.pk]})
    alert.refresh_from_db()
    assert alert.state == "resolved"
    assert alert.events.last().actor == f"user:{responder.pk}"


def test_viewer_cannot_acknowledge(client, member, org, alert):
    client.force_login(member(org, Role.VIEWER))

    client.post(ALERTS, {"action": "acknowledge", "_selected_action": [alert.pk]})

    alert.refresh_from_db()
    assert alert.state == "firing"


def test_responder_of_another_org_cannot_touch_the_alert(client, member, other_org, alert):
    client.force_login(member(other_org, Role.RESPONDER))

    client.post(ALERTS, {"action": "resolve", "_selected_action": [alert.pk]})

    alert.refresh_from_db()
    assert alert.state == "firing"
    assert listed(client, ALERTS) == set()


def test_alert_filters_and_search(manager, alert):
    assert listed(manager, f"{ALERTS}?q=/pay") == {"k firing"}
    assert listed(manager, f"{ALERTS}?q=/nowhere") == set()
    assert listed(manager, f"{ALERTS}?state__exact=resolved") == set()
    assert listed(manager, f"{ALERTS}?state__exact=firing&is_test__exact=0") == {"k firing"}
    assert listed(manager, f"{ALERTS}?severity__exact=critical") == set()


def silence_form(org, **changes) -> dict:
    now = timezone.now()
    data = {
        "organization": org.pk,
        "matchers": '[{"name": "rule", "op": "=", "value": "api.5xx"}]',
        "starts_at_0": now.strftime("%Y-%m-%d"),
        "starts_at_1": now.strftime("%H:%M:%S"),
        "ends_at_0": (now + timedelta(hours=2)).strftime("%Y-%m-%d"),
        "ends_at_1": (now + timedelta(hours=2)).strftime("%H:%M:%S"),
        "comment": "deploying",
    }
    data.update(changes)
    return data


def test_silence_is_created_by_its_author(manager, org):
    response = manager.post(f"{SILENCES}add/", silence_form(org))

    assert response.status_code == 302, response.context["adminform"].form.errors
    silence = Silence.objects.get()
    assert silence.created_by == response.wsgi_request.user


@pytest.mark.parametrize(
    "matchers",
    [
        "[]",
        '[{"name": "rule", "op": "~", "value": "x"}]',
        '[{"name": "rule", "op": "=~", "value": "("}]',
        '{"name": "rule"}',
        "not json",
    ],
)
def test_invalid_matchers_are_refused(manager, org, matchers):
    response = manager.post(f"{SILENCES}add/", silence_form(org, matchers=matchers))

    assert response.status_code == 200
    assert "matchers" in response.context["adminform"].form.errors
    assert not Silence.objects.exists()


def test_silence_list_filters_active_and_expired(manager, org):
    now = timezone.now()
    Silence.objects.create(
        organization=org,
        matchers=[{"name": "rule", "value": "a"}],
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(hours=1),
        comment="current window",
    )
    Silence.objects.create(
        organization=org,
        matchers=[{"name": "rule", "value": "b"}],
        starts_at=now - timedelta(days=2),
        ends_at=now - timedelta(days=1),
        comment="past window",
    )

    active = manager.get(f"{SILENCES}?status=active").content.decode()
    expired = manager.get(f"{SILENCES}?status=expired").content.decode()

    assert "current window" in active
    assert "past window" not in active
    assert "past window" in expired
    assert "current window" not in expired


EVENTS = "/admin/alerting/alertevent/"


def test_the_outbox_page_lists_failed_events_and_retries_only_its_own(manager, org, other_org):
    from controlplane.alerting.models import AlertEvent
    from tests.factories import make_alert

    ours = make_alert(make_rule(org, "ours"))
    theirs = make_alert(make_rule(other_org, "theirs"))
    AlertEvent.objects.update(dispatch="failed", dispatch_note="paging failed: boom")

    page = manager.get(f"{EVENTS}?dispatch=failed")
    assert page.status_code == 200
    content = page.content.decode()
    assert "ours" in content
    assert "theirs" not in content

    ids = list(AlertEvent.objects.values_list("pk", flat=True))  # both, as a forged POST
    response = manager.post(
        EVENTS, {"action": "retry_dispatch", "_selected_action": ids}, follow=True
    )

    assert response.status_code == 200
    assert AlertEvent.objects.get(alert=ours).dispatch == "pending"
    assert AlertEvent.objects.get(alert=theirs).dispatch == "failed"
