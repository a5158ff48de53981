"""SLOs in the admin: checked as the API checks them, saved and deleted through the
recorder, behind the organisation walls, with their evaluation shown read-only."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from controlplane.alerting.models import Alert
from controlplane.catalog.actors import BEAT
from controlplane.catalog.models import Membership, MetricSource, Role, Service
from controlplane.slo import alerts as slo_alerts
from controlplane.slo.maths import tiers
from controlplane.slo.models import SLO, SLOEvaluation
from tests.factories import make_channel, make_policy, make_slo
from tests.integration.prometheus import prometheus_factory  # noqa: F401
from tests.services import free_port

pytestmark = pytest.mark.django_db

SLOS = "/admin/slo/slo/"
BAD = 'http_requests_total{code=~"5.."}'
TOTAL = "http_requests_total"


@pytest.fixture(scope="session")
def prometheus(prometheus_factory):  # noqa: F811
    return prometheus_factory({})  # parsing needs no data


@pytest.fixture
def source(org, prometheus) -> MetricSource:
    return MetricSource.objects.create(organization=org, name="main", url=prometheus.url)


@pytest.fixture
def manager(client, member, org):
    client.force_login(member(org, Role.MANAGER))
    return client


def form(org, metric_source, **changes) -> dict:
    data = {
        "organization": org.pk,
        "slug": "checkout-availability",
        "name": "Checkout availability",
        "description": "",
        "service": "",
        "enabled": "on",
        "source": metric_source.pk if metric_source else "",
        "kind": "ratio",
        "good": "",
        "bad": BAD,
        "total": TOTAL,
        "metric": "",
        "selector": "",
        "expr": "",
        "op": "",
        "threshold": "",
        "objective": "99.9",
        "window": "30d",
        "time_zone": "UTC",
        "budgeting": "occurrences",
        "slice_length": "5m",
        "slice_target": "",
        "min_events": "100",
        "page": "on",
        "ticket": "on",
        "escalation_policy": "",
        "runbook": "",
        "labels": '{"team": "payments"}',
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def errors_of(response) -> dict:
    assert response.status_code == 200, "the form was accepted"
    return response.context["adminform"].form.errors


def open_page_alert(slo: SLO) -> Alert:
    fast = tiers(timedelta(days=30))[0]
    slo_alerts.reconcile(slo, [fast], [fast], {"1h": 20.0, "5m": 20.0}, BEAT)
    return Alert.objects.get(slo=slo)


# --- adding and changing -------------------------------------------------------------------


def test_a_manager_adds_a_checked_slo_due_at_once(manager, org, source):
    response = manager.post(f"{SLOS}add/", form(org, source))

    assert response.status_code == 302, errors_of(response)
    slo = SLO.objects.get(organization=org, slug="checkout-availability")
    assert (slo.kind, slo.bad, slo.total, slo.objective) == ("ratio", BAD, TOTAL, 99.9)
    assert slo.labels == {"team": "payments"}
    assert slo.min_events == 100
    assert slo.verification_note == ""  # the source parsed every query
    # Saved through the recorder: its evaluation row exists and is due.
    assert slo.evaluation.status == SLOEvaluation.Status.PENDING
    assert slo.evaluation.due_at <= timezone.now()


def test_fields_of_another_kind_of_sli_are_not_kept(manager, org, source):
    data = form(org, source, metric="leftover_seconds", expr="up", op="<", threshold="3")

    response = manager.post(f"{SLOS}add/", data)

    assert response.status_code == 302, errors_of(response)
    slo = SLO.objects.get()
    assert (slo.metric, slo.expr, slo.op, slo.threshold) == ("", "", "", None)


def test_a_threshold_slo_with_time_slices(manager, org, source):
    data = form(
        org,
        source,
        kind="threshold",
        expr="time() - backup_last_success_timestamp_seconds",
        op="<",
        threshold="86400",
        budgeting="timeslices",
        slice_length="10m",
    )

    response = manager.post(f"{SLOS}add/", data)

    assert response.status_code == 302, errors_of(response)
    slo = SLO.objects.get()
    assert (slo.kind, slo.threshold, slo.slice_length) == (
        "threshold",
        86400,
        timedelta(minutes=10),
    )
    assert (slo.bad, slo.total) == ("", "")


def test_a_change_makes_the_slo_due_and_leaves_its_measurement_alone(manager, org, source):
    later = timezone.now() + timedelta(hours=1)
    slo = make_slo(org, source=source, evaluation={"status": "ok", "due_at": later, "sli": 0.99})

    data = form(org, source, slug=slo.slug, objective="99.5")
    response = manager.post(f"{SLOS}{slo.pk}/change/", data)

    assert response.status_code == 302, errors_of(response)
    slo.refresh_from_db()
    assert slo.objective == 99.5
    row = SLOEvaluation.objects.get(slo=slo)
    assert row.due_at <= timezone.now()
    assert (row.status, row.sli) == ("ok", 0.99)


def test_an_slo_cannot_be_moved_to_another_organisation(client, member, org, other_org, source):
    user = member(org, Role.MANAGER)
    Membership.objects.create(organization=other_org, user=user, role=Role.MANAGER)
    client.force_login(user)
    slo = make_slo(org, source=source)

    response = client.post(
        f"{SLOS}{slo.pk}/change/", form(org, source, slug=slo.slug, organization=other_org.pk)
    )

    assert response.status_code == 302, errors_of(response)
    slo.refresh_from_db()
    assert slo.organization == org
    assert 'name="organization"' not in client.get(f"{SLOS}{slo.pk}/change/").content.decode()


def test_an_unreachable_source_saves_the_slo_with_a_warning(manager, org):
    gone = MetricSource.objects.create(
        organization=org, name="gone", url=f"http://127.0.0.1:{free_port()}", timeout=1
    )

    response = manager.post(f"{SLOS}add/", form(org, gone), follow=True)

    slo = SLO.objects.get()
    assert slo.verification_note.startswith("Not checked")
    assert "without being checked against its source" in response.content.decode()


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"objective": "0"}, "objective", "strictly between 0 and 100"),
        ({"objective": "100"}, "objective", "strictly between 0 and 100"),
        ({"objective": "101"}, "objective", "strictly between 0 and 100"),
        ({"window": "0"}, "window", "not one of the available choices"),
        ({"window": "1d"}, "window", "not one of the available choices"),
        ({"window": "month", "time_zone": "Mars/Olympus"}, "time_zone", "Mars/Olympus"),
        ({"total": ""}, "total", "needs a total"),
        ({"good": TOTAL}, "good", "not both"),
        ({"kind": "latency", "metric": "latency_bucket", "threshold": "0.2"}, "metric",
         "without its _bucket"),
        ({"kind": "threshold", "expr": "up", "op": "<", "threshold": "1"}, "budgeting",
         "time slices only"),
        ({"budgeting": "timeslices"}, "slice_target", "slice target"),
        ({"slice_length": "five"}, "slice_length", "not valid"),
        ({"labels": '{"severity": "page"}'}, "labels", "set by the SLO itself"),
        ({"slug": "Not A Slug"}, "slug", "lowercase"),
        ({"source": ""}, "source", "reads its SLI from a Prometheus source"),
    ],
)  # fmt: skip
def test_bad_input_is_refused_naming_the_field(manager, org, source, changes, field, words):
    response = manager.post(f"{SLOS}add/", form(org, source, **changes))

    errors = errors_of(response)
    assert field in errors, errors
    assert words in " ".join(errors[field]), errors
    assert not SLO.objects.exists()


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"bad": 'http_requests_total{code=~"5.."'}, "bad", "Prometheus refused"),
        ({"total": "sum(rate(http_requests_total[5m]))"}, "total", "Not a counter selector"),
        ({"kind": "threshold", "expr": "time() -", "op": "<", "threshold": "1",
          "budgeting": "timeslices"}, "expr", "Prometheus refused"),
    ],
)  # fmt: skip
def test_queries_the_source_cannot_parse_are_refused_in_its_words(
    manager, org, source, changes, field, words
):
    response = manager.post(f"{SLOS}add/", form(org, source, **changes))

    message = " ".join(errors_of(response)[field])
    assert words in message
    assert "parse error" in message
    assert not SLO.objects.exists()


def test_a_slug_taken_in_the_organisation_is_refused(manager, org, source):
    make_slo(org, "checkout-availability", source=source)

    response = manager.post(f"{SLOS}add/", form(org, source))

    assert "already exists" in str(errors_of(response))
    assert SLO.objects.count() == 1


# --- the walls -----------------------------------------------------------------------------


def test_a_manager_sees_and_picks_only_their_organisations_rows(manager, org, other_org, source):
    make_slo(org, "ours", source=source)
    theirs = make_slo(other_org, "theirs")
    foreign_service = Service.objects.create(organization=other_org, slug="ledger", name="L")
    foreign_policy = make_policy(
        other_org,
        "their-policy",
        steps=[(0, [make_channel(other_org, "mail", "email", to=["x@example.com"])])],
    )

    listed = {str(slo) for slo in manager.get(SLOS).context["cl"].result_list}
    fields = manager.get(f"{SLOS}add/").context["adminform"].form.fields

    assert listed == {"ours"}
    assert list(fields["source"].queryset) == [source]
    assert foreign_service not in fields["service"].queryset
    assert foreign_policy not in fields["escalation_policy"].queryset
    assert list(fields["organization"].queryset) == [org]
    assert manager.get(f"{SLOS}{theirs.pk}/change/").status_code == 302  # "missing"


def test_another_organisations_source_cannot_be_posted(manager, org, other_org, source):
    foreign = MetricSource.objects.create(
        organization=other_org, name="theirs", url="http://127.0.0.1:9"
    )

    response = manager.post(f"{SLOS}add/", form(org, foreign))

    assert "source" in errors_of(response)
    assert not SLO.objects.exists()


def test_a_source_of_an_organisation_one_only_reads_is_refused(
    client, member, org, other_org, source
):
    # A manager of one organisation who views another sees its sources in the list,
    # and cannot give one to an SLO of the first.
    user = member(org, Role.MANAGER)
    Membership.objects.create(organization=other_org, user=user, role=Role.VIEWER)
    client.force_login(user)
    foreign = MetricSource.objects.create(
        organization=other_org, name="theirs", url="http://127.0.0.1:9"
    )

    response = client.post(f"{SLOS}add/", form(org, foreign))

    assert "belongs to another organisation" in " ".join(errors_of(response)["source"])


def test_a_viewer_reads_but_cannot_change(client, member, org, source):
    client.force_login(member(org, Role.VIEWER))
    slo = make_slo(org, source=source)

    assert client.get(f"{SLOS}{slo.pk}/change/").status_code == 200
    assert client.get(f"{SLOS}add/").status_code == 403
    response = client.post(f"{SLOS}{slo.pk}/change/", form(org, source, objective="50"))
    assert response.status_code == 403
    slo.refresh_from_db()
    assert slo.objective == 99.9


# --- what the evaluator measured -----------------------------------------------------------


def test_the_list_shows_status_and_budget_from_the_evaluation(manager, org, source):
    make_slo(
        org,
        "burning",
        source=source,
        evaluation={"status": "breaching", "budget_remaining": 0.125, "sli": 0.998},
    )

    content = manager.get(SLOS).content.decode()

    assert "Breaching (page burn rate)" in content
    assert "12.500%" in content


def test_the_change_page_shows_the_evaluation_read_only(manager, org, source, settings):
    settings.TRACE_URL_TEMPLATE = "https://traces.example/{trace_id}"
    slo = make_slo(
        org,
        source=source,
        evaluation={
            "status": "no_data",
            "burn_rates": {"5m": 14.5, "1h": 2.0},
            "last_error": "source unreachable: connection refused",
            "trace_id": "0af7651916cd43dd8448eb211c80319c",
            "evaluated_at": timezone.now(),
        },
    )

    page = manager.get(f"{SLOS}{slo.pk}/change/").content.decode()

    assert "No data" in page
    assert "5m: 14.5x, 30m: -, 1h: 2x" in page
    assert "source unreachable: connection refused" in page
    assert 'href="https://traces.example/0af7651916cd43dd8448eb211c80319c"' in page
    assert 'name="status"' not in page  # shown, not a field of the form


def test_filters_and_search(manager, org, source):
    make_slo(org, "fast", source=source, evaluation={"status": "breaching"})
    make_slo(org, "calm", source=source, description="payments", evaluation={"status": "ok"})
    make_slo(org, "off", source=source, enabled=False)

    def listed(query: str) -> set[str]:
        response = manager.get(f"{SLOS}?{query}")
        assert response.status_code == 200
        return {str(slo) for slo in response.context["cl"].result_list}

    assert listed("evaluation__status__exact=breaching") == {"fast"}
    assert listed("enabled__exact=0") == {"off"}
    assert listed("kind__exact=ratio") == {"fast", "calm", "off"}
    assert listed("window__exact=30d&budgeting__exact=occurrences") == {"fast", "calm", "off"}
    assert listed("q=payments") == {"calm"}


# --- actions and deletion ------------------------------------------------------------------


def act(client, action: str, *slos: SLO, follow: bool = False):
    selected = [slo.pk for slo in slos]
    return client.post(SLOS, {"action": action, "_selected_action": selected}, follow=follow)


def test_disable_and_enable_go_through_the_recorder(manager, org, source):
    later = timezone.now() + timedelta(hours=1)
    slo = make_slo(org, source=source, evaluation={"due_at": later})

    response = act(manager, "disable", slo, follow=True)

    slo.refresh_from_db()
    assert slo.enabled is False
    assert "1 SLO(s) disabled." in response.content.decode()
    assert slo.evaluation.due_at <= timezone.now()
    act(manager, "enable", slo)
    slo.refresh_from_db()
    assert slo.enabled is True


def test_evaluate_now_makes_the_enabled_slos_due(manager, org, source):
    later = timezone.now() + timedelta(hours=1)
    on = make_slo(org, "on", source=source, evaluation={"due_at": later})
    off = make_slo(org, "off", source=source, enabled=False, evaluation={"due_at": later})

    response = act(manager, "evaluate_now", on, off, follow=True)

    assert SLOEvaluation.objects.get(slo=on).due_at <= timezone.now()
    assert SLOEvaluation.objects.get(slo=off).due_at == later
    assert "1 SLO(s) will be evaluated" in response.content.decode()


def test_a_viewer_cannot_run_the_actions(client, member, org, source):
    client.force_login(member(org, Role.VIEWER))
    later = timezone.now() + timedelta(hours=1)
    slo = make_slo(org, source=source, evaluation={"due_at": later})

    act(client, "disable", slo)
    act(client, "evaluate_now", slo)

    slo.refresh_from_db()
    assert slo.enabled is True
    assert slo.evaluation.due_at == later


def test_deleting_an_slo_resolves_its_open_alerts(manager, org, source):
    slo = make_slo(org, source=source)
    alert = open_page_alert(slo)

    response = manager.post(f"{SLOS}{slo.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert not SLO.objects.exists()
    alert.refresh_from_db()
    assert alert.state == Alert.State.RESOLVED


def test_deleting_several_goes_through_the_recorder_too(manager, org, source):
    first, second = make_slo(org, "first", source=source), make_slo(org, "second", source=source)
    alerts = [open_page_alert(first), open_page_alert(second)]

    response = act(manager, "delete_selected", first, second)
    assert response.status_code == 200  # the confirmation page
    manager.post(
        SLOS,
        {"action": "delete_selected", "_selected_action": [first.pk, second.pk], "post": "yes"},
    )

    assert not SLO.objects.exists()
    for alert in alerts:
        alert.refresh_from_db()
        assert alert.state == Alert.State.RESOLVED
