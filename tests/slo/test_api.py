"""SLOs as code and their status through the API: the document in, the same document
out with what the evaluator measured, refusals naming the document's fields.

Queries are checked by a real Prometheus (empty: parsing needs no data), as for rules.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.db import IntegrityError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from controlplane.alerting.models import Alert
from controlplane.api import slos as slo_api
from controlplane.catalog.actors import BEAT
from controlplane.catalog.models import ApiToken, MetricSource, Role, Service
from controlplane.slo import documents, editing
from controlplane.slo.models import SLO, SLOEvaluation, SLOSnapshot
from tests.factories import make_channel, make_policy, make_runbook, make_slo
from tests.integration.prometheus import prometheus_factory  # noqa: F401
from tests.services import free_port

pytestmark = pytest.mark.django_db

BAD = 'http_server_request_duration_seconds_count{http_response_status_code=~"5.."}'
TOTAL = "http_server_request_duration_seconds_count"
DOCUMENT = {
    "slug": "checkout-availability",
    "name": "Checkout availability",
    "description": "Requests that do not fail.",
    "service": "checkout",
    "source": "main",
    "sli": {"kind": "ratio", "bad": BAD, "total": TOTAL},
    "objective": 99.9,
    "window": "30d",
    "time_zone": "UTC",
    "budgeting": "occurrences",
    "slice_length": "5m",
    "slice_target": None,
    "min_events": 100,
    "page": True,
    "ticket": False,
    "escalation_policy": None,
    "runbook": None,
    "labels": {"team": "payments"},
    "enabled": True,
}
STATUS_FIELDS = {
    "status",
    "sli_value",
    "budget_remaining",
    "burn_rates",
    "events",
    "time_to_exhaustion",
    "current_value",  # RPO and RTO (tests/slo/test_objectives.py); null here
    "current_unit",
    "window_start",
    "window_end",
    "evaluated_at",
    "last_error",
    "trace_id",
    "trace_url",
    "verification_note",
    "url",
}
WINDOWS = ["5m", "30m", "1h", "2h", "6h", "1d", "3d"]
URL = "/api/v1/slos/"


@pytest.fixture(scope="session")
def prometheus(prometheus_factory):  # noqa: F811
    return prometheus_factory({})


@pytest.fixture
def source(org, prometheus) -> MetricSource:
    return MetricSource.objects.create(organization=org, name="main", url=prometheus.url)


@pytest.fixture
def writer(api, write_token):
    return api(write_token)


@pytest.fixture
def reader(api, read_token):
    return api(read_token)


def post(client, body=DOCUMENT, **changes):
    return client.post(URL, {**body, **changes}, format="json")


def with_sli(**sli):
    return {**DOCUMENT, "sli": sli}


# --- reading -------------------------------------------------------------------------------


def test_the_list_shows_each_slo_with_its_status(reader, org, service, settings):
    settings.TRACE_URL_TEMPLATE = "https://traces.example/{trace_id}"
    evaluated = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    make_slo(
        org,
        "checkout-availability",
        service=service,
        evaluation={
            "status": SLOEvaluation.Status.WARNING,
            "sli": 0.9985,
            "budget_remaining": -0.5,
            "burn_rates": {"5m": 0.0, "1h": 3.5, "1d": 3.2},
            "events": 12345.0,
            "time_to_exhaustion": None,
            "window_start": evaluated - timedelta(days=30),
            "window_end": evaluated,
            "evaluated_at": evaluated,
            "trace_id": "0af7651916cd43dd8448eb211c80319c",
        },
    )

    body = reader.get(URL).json()

    assert body["count"] == 1
    (slo,) = body["results"]
    assert slo["slug"] == "checkout-availability"
    assert slo["service"] == "checkout"
    assert slo["sli"] == {"kind": "ratio", "bad": 'http_requests_total{code=~"5.."}',
                          "total": "http_requests_total"}  # fmt: skip
    assert (slo["objective"], slo["window"], slo["time_zone"]) == (99.9, "30d", "UTC")
    assert slo["budgeting"] == "occurrences"
    assert slo["status"] == "warning"
    assert slo["sli_value"] == 0.9985
    assert slo["budget_remaining"] == -0.5
    # Every window, always: null where the evaluator measured nothing.
    assert slo["burn_rates"] == {
        "5m": 0.0, "30m": None, "1h": 3.5, "2h": None, "6h": None, "1d": 3.2, "3d": None
    }  # fmt: skip
    assert slo["events"] == 12345.0
    assert slo["time_to_exhaustion"] is None
    assert slo["evaluated_at"] == "2026-12-07T09:00:00Z"
    assert slo["window_start"] == "2026-11-07T09:00:00Z"
    assert slo["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert slo["trace_url"] == "https://traces.example/0af7651916cd43dd8448eb211c80319c"
    assert slo["url"] == "http://testserver/slos/checkout-availability/"
    assert set(slo) == set(DOCUMENT) | STATUS_FIELDS


def test_time_to_exhaustion_is_in_seconds(reader, org):
    make_slo(org, evaluation={"status": "breaching", "time_to_exhaustion": timedelta(hours=5)})

    (slo,) = reader.get(URL).json()["results"]

    assert slo["time_to_exhaustion"] == 18000.0
    assert slo["status"] == "breaching"


def test_an_slo_not_evaluated_yet_is_pending_with_nulls(reader, org):
    make_slo(org)

    (slo,) = reader.get(URL).json()["results"]

    assert slo["status"] == "pending"
    assert slo["budget_remaining"] is None
    assert slo["evaluated_at"] is None
    assert slo["burn_rates"] == dict.fromkeys(WINDOWS)


def _queries_for_the_list(client) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(URL)
    assert response.status_code == 200
    return len(captured.captured_queries)


def test_the_list_costs_the_same_queries_for_3_slos_as_for_30(
    reader, org, service, django_assert_max_num_queries
):
    mail = make_channel(org, "oncall-mail", "email", to=["oncall@example.com"])
    policy = make_policy(org, "slo-policy", steps=[(0, [mail])])
    runbook = make_runbook(org, "slo-runbook")

    def make(n: int) -> None:
        make_slo(org, f"slo-{n:02}", service=service, escalation_policy=policy, runbook=runbook)

    for n in range(3):
        make(n)
    reader.get(URL)  # the token's first use is written once
    three = _queries_for_the_list(reader)
    for n in range(3, 30):
        make(n)
    thirty = _queries_for_the_list(reader)

    assert thirty == three
    with django_assert_max_num_queries(4):  # the token, the count, the page (+ a savepoint)
        body = reader.get(URL).json()
    assert body["count"] == 30
    assert {s["escalation_policy"] for s in body["results"]} == {"slo-policy"}
    assert {s["runbook"] for s in body["results"]} == {"slo-runbook"}


def test_filters_by_service_and_status(reader, org, service):
    other = Service.objects.create(organization=org, slug="ledger", name="Ledger")
    make_slo(org, "a", service=service, evaluation={"status": "ok"})
    make_slo(org, "b", service=service, evaluation={"status": "breaching"})
    make_slo(org, "c", service=other, evaluation={"status": "breaching"})

    def slugs(query: str) -> list[str]:
        return [s["slug"] for s in reader.get(f"{URL}?{query}").json()["results"]]

    assert slugs("service=checkout") == ["a", "b"]
    assert slugs("status=breaching") == ["b", "c"]
    assert slugs("service=checkout&status=breaching") == ["b"]
    assert slugs("service=nothing") == []


def test_an_unknown_status_filter_is_400_naming_the_choices(reader, org):
    response = reader.get(f"{URL}?status=burning")

    assert response.status_code == 400
    assert "breaching" in response.json()["errors"]["status"][0]


def test_the_list_is_paginated(reader, org, settings):
    for n in range(55):
        make_slo(org, f"slo-{n:02}")

    body = reader.get(URL).json()

    assert body["count"] == 55
    assert len(body["results"]) == 50
    assert body["next"].endswith("page=2")


def test_detail_by_slug(reader, org):
    make_slo(org, "latency", evaluation={"status": "ok", "budget_remaining": 0.75})

    response = reader.get(f"{URL}latency/")

    assert response.status_code == 200
    assert response.json()["budget_remaining"] == 0.75


def test_another_organisations_slo_is_not_there(reader, org, other_org):
    make_slo(other_org, "theirs")

    assert reader.get(URL).json()["count"] == 0
    assert reader.get(f"{URL}theirs/").status_code == 404
    assert reader.get(f"{URL}theirs/history/").status_code == 404


# --- writing -------------------------------------------------------------------------------


def test_a_created_slo_reads_back_as_its_document(writer, service, source):
    created = post(writer)

    assert created.status_code == 201, created.json()
    body = writer.get(f"{URL}checkout-availability/").json()
    assert {key: body[key] for key in DOCUMENT} == DOCUMENT
    assert created.json() == body
    assert body["status"] == "pending"
    assert body["verification_note"] == ""  # checked by the source
    slo = SLO.objects.get(slug="checkout-availability")
    assert slo.organization == service.organization
    assert slo.bad == BAD
    # The recorder made it due at once.
    assert slo.evaluation.due_at <= timezone.now()


def test_defaults_fill_what_a_document_leaves_out(writer, service, source):
    minimal = {key: DOCUMENT[key] for key in ("slug", "name", "source", "sli", "objective")}

    response = post(writer, minimal)

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["window"], body["budgeting"], body["min_events"]) == ("30d", "occurrences", 0)
    assert (body["page"], body["ticket"], body["enabled"]) == (True, True, True)
    assert body["service"] is None
    assert body["labels"] == {}


def test_a_document_read_can_be_put_back_unchanged(writer, service, source):
    post(writer)
    read = writer.get(f"{URL}checkout-availability/").json()

    response = writer.put(f"{URL}checkout-availability/", read, format="json")

    assert response.status_code == 200, response.json()
    assert {key: response.json()[key] for key in DOCUMENT} == DOCUMENT


def test_a_latency_and_a_threshold_slo_are_created(writer, org, source):
    threshold = {
        **DOCUMENT,
        "slug": "backup-age",
        "service": None,
        "sli": {"kind": "threshold", "expr": "time() - backup_last_success_timestamp_seconds",
                "op": "<", "threshold": 86400},
        "budgeting": "timeslices",
        "slice_length": "5m",
    }  # fmt: skip

    response = post(writer, threshold)

    assert response.status_code == 201, response.json()
    assert response.json()["sli"] == {**threshold["sli"], "threshold": 86400.0}
    assert SLO.objects.get(slug="backup-age").kind == SLO.Kind.THRESHOLD


def test_a_calendar_window_keeps_its_time_zone(writer, service, source):
    response = post(writer, window="month", time_zone="Europe/Paris")

    assert response.status_code == 201, response.json()
    assert (response.json()["window"], response.json()["time_zone"]) == ("month", "Europe/Paris")


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"objective": 0}, "objective", "strictly between 0 and 100"),
        ({"objective": 100}, "objective", "strictly between 0 and 100"),
        ({"objective": 101}, "objective", "strictly between 0 and 100"),
        ({"objective": "99.9"}, "objective", "A number"),
        ({"window": "0"}, "window", "One of 7d, 28d, 30d, week, month, quarter"),
        ({"window": "1d"}, "window", "One of 7d, 28d, 30d, week, month, quarter"),
        ({"window": "month", "time_zone": "Mars/Olympus"}, "time_zone", "Mars/Olympus"),
        ({"budgeting": "events"}, "budgeting", "One of occurrences, timeslices"),
        ({"source": "nowhere"}, "source", "Unknown source 'nowhere'"),
        ({"service": "nothing"}, "service", "Unknown service 'nothing'"),
        ({"escalation_policy": "nobody"}, "escalation_policy", "Unknown escalation policy"),
        ({"sli": {"bad": BAD, "total": TOTAL}}, "sli", '"kind" one of ratio, latency'),
        ({"sli": {"kind": "ratio", "bad": BAD}}, "sli.total", "needs a total"),
        ({"sli": {"kind": "ratio", "good": TOTAL, "bad": BAD, "total": TOTAL}}, "sli.good",
         "not both"),
        ({"sli": {"kind": "ratio", "total": TOTAL, "metric": "x"}}, "sli", "has no metric"),
        ({"sli": {"kind": "latency", "metric": "latency_bucket", "threshold": 0.2}},
         "sli.metric", "without its _bucket"),
        ({"sli": {"kind": "latency", "metric": "latency", "threshold": -1}}, "sli.threshold",
         "above 0"),
        ({"sli": {"kind": "threshold", "expr": "up", "op": "<", "threshold": 1}}, "budgeting",
         "time slices only"),
        ({"min_events": -1}, "min_events", "0 or more"),
        ({"labels": {"slo": "x"}}, "labels", "set by the SLO itself"),
        ({"slug": "Not A Slug"}, "slug", "lowercase"),
        ({"page": "yes"}, "page", "true or false"),
        ({"slice_length": "five"}, "slice_length", "not valid"),
        ({"budgeting": "timeslices", "slice_target": None}, "slice_target", "slice target"),
        ({"no_such_field": 1}, "no_such_field", "Unknown field"),
    ],
)  # fmt: skip
def test_bad_documents_are_400_naming_the_field(writer, service, source, changes, field, words):
    response = post(writer, **changes)

    assert response.status_code == 400, response.json()
    body = response.json()
    assert field in body["errors"], body
    assert words in " ".join(body["errors"][field]), body
    assert body["detail"].startswith("Invalid input.")
    assert not SLO.objects.exists()


def test_a_required_field_left_out_is_named(writer, source):
    body = {key: value for key, value in DOCUMENT.items() if key not in ("sli", "objective")}

    response = post(writer, body)

    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"sli", "objective"}


def test_a_body_that_is_not_an_object_is_400(writer, source):
    response = writer.post(URL, [DOCUMENT], format="json")

    assert response.status_code == 400
    assert not SLO.objects.exists()


def test_a_lone_surrogate_is_refused_naming_its_field(writer, source):
    body = json.dumps({**DOCUMENT, "source": "\ud800"}).encode()  # valid JSON: \ud800

    response = writer.generic("POST", URL, body, content_type="application/json")

    assert response.status_code == 400
    assert "surrogate" in response.json()["errors"]["source"][0]


@pytest.mark.parametrize(
    ("sli", "field", "words"),
    [
        ({"kind": "ratio", "bad": 'http_requests_total{code=~"5.."', "total": TOTAL},
         "sli.bad", "Prometheus refused"),
        ({"kind": "ratio", "bad": BAD, "total": "sum(rate(x[5m]))"}, "sli.total",
         "Not a counter selector"),
        ({"kind": "threshold", "expr": "time() - ", "op": "<", "threshold": 1}, "sli.expr",
         "Prometheus refused"),
    ],
)  # fmt: skip
def test_queries_the_source_cannot_parse_are_refused_in_its_words(
    writer, service, source, sli, field, words
):
    body = {**DOCUMENT, "sli": sli}
    if sli["kind"] == "threshold":
        body["budgeting"] = "timeslices"

    response = post(writer, body)

    assert response.status_code == 400, response.json()
    message = " ".join(response.json()["errors"][field])
    assert words in message
    assert "parse error" in message  # Prometheus' own words
    assert not SLO.objects.exists()


@pytest.fixture
def histogram_source(org, prometheus_factory):  # noqa: F811
    """A source whose histogram has buckets 0.1, 0.25, 1 and +Inf, sampled a moment ago
    (the check asks for the buckets at the present time)."""
    at = timezone.now() - timedelta(seconds=30)
    series = {
        f'latency_seconds_bucket{{le="{le}",route="/pay"}}': [(at, count)]
        for le, count in (("0.1", 5), ("0.25", 8), ("1", 9), ("+Inf", 10))
    }
    series['latency_seconds_count{route="/pay"}'] = [(at, 10)]
    series['latency_seconds_sum{route="/pay"}'] = [(at, 2.5)]
    prometheus = prometheus_factory(series, {"latency_seconds": "histogram"})
    return MetricSource.objects.create(organization=org, name="histograms", url=prometheus.url)


def latency(threshold: float, metric: str = "latency_seconds") -> dict:
    sli = {"kind": "latency", "metric": metric, "selector": 'route="/pay"', "threshold": threshold}
    return {**DOCUMENT, "service": None, "source": "histograms", "sli": sli}


def test_a_latency_slo_uses_the_bucket_at_its_threshold(writer, histogram_source):
    response = post(writer, latency(0.25))

    assert response.status_code == 201, response.json()
    assert response.json()["sli"]["threshold"] == 0.25
    assert SLO.objects.get().bucket_le == "0.25"


def test_a_latency_threshold_with_no_bucket_is_refused_naming_the_buckets(writer, histogram_source):
    response = post(writer, latency(0.3))

    assert response.status_code == 400, response.json()
    message = response.json()["errors"]["sli.threshold"][0]
    assert "No bucket of latency_seconds is at 0.3 s" in message
    assert "the buckets are 0.1, 0.25, 1, +Inf" in message
    assert not SLO.objects.exists()


def test_a_latency_slo_on_a_histogram_the_source_lacks_is_refused(writer, histogram_source):
    response = post(writer, latency(0.25, metric="no_such_seconds"))

    assert response.status_code == 400, response.json()
    assert "no series no_such_seconds_bucket" in response.json()["errors"]["sli.metric"][0]


def test_an_unreachable_source_saves_the_slo_with_a_note(writer, org, service):
    MetricSource.objects.create(
        organization=org, name="gone", url=f"http://127.0.0.1:{free_port()}", timeout=1
    )

    response = post(writer, source="gone")

    assert response.status_code == 201, response.json()
    assert response.json()["verification_note"].startswith("Not checked:")


def test_a_duplicate_slug_is_refused(writer, service, source):
    assert post(writer).status_code == 201

    response = post(writer)

    assert response.status_code == 400
    assert "already exists" in response.json()["errors"]["slug"][0]
    assert SLO.objects.count() == 1


def test_an_slo_created_concurrently_under_the_same_slug_is_a_clear_400(
    writer, org, service, source, monkeypatch
):
    checking = documents.apply

    def racing(*args, **kwargs):
        checked = checking(*args, **kwargs)
        # Another request inserts the same slug between this check and this insert.
        make_slo(org, checked.slug, source=source)
        return checked

    monkeypatch.setattr(documents, "apply", racing)

    response = post(writer)

    assert response.status_code == 400, response.content
    assert "already exists" in response.json()["errors"]["slug"][0]
    assert SLO.objects.get(slug="checkout-availability").description == ""  # the other's


@pytest.mark.parametrize("method", ["post", "patch"])
def test_other_clashes_on_save_are_a_409(writer, org, service, source, monkeypatch, method):
    make_slo(org, "existing", source=source)

    def clash(slo, actor):
        raise IntegrityError("violates foreign key constraint")

    monkeypatch.setattr(editing, "save", clash)

    if method == "post":
        response = post(writer)
    else:
        response = writer.patch(f"{URL}existing/", {"name": "Renamed"}, format="json")

    assert response.status_code == 409, response.json()
    assert "at the same time" in response.json()["detail"]


def test_patch_changes_only_what_it_names(writer, service, source):
    post(writer)

    response = writer.patch(f"{URL}checkout-availability/", {"objective": 99.5}, format="json")

    assert response.status_code == 200, response.json()
    slo = SLO.objects.get(slug="checkout-availability")
    assert slo.objective == 99.5
    assert slo.labels == {"team": "payments"}
    assert slo.min_events == 100


def test_patch_with_an_unparsable_query_changes_nothing(writer, service, source):
    post(writer)
    broken = {"kind": "ratio", "bad": BAD, "total": f"{TOTAL}{{"}

    response = writer.patch(f"{URL}checkout-availability/", {"sli": broken}, format="json")

    assert response.status_code == 400
    assert "Prometheus refused" in response.json()["errors"]["sli.total"][0]
    assert SLO.objects.get(slug="checkout-availability").total == TOTAL


def test_put_resets_what_it_leaves_out(writer, service, source):
    post(writer)
    body = {key: value for key, value in DOCUMENT.items() if key not in ("labels", "min_events")}

    response = writer.put(f"{URL}checkout-availability/", body, format="json")

    assert response.status_code == 200, response.json()
    slo = SLO.objects.get(slug="checkout-availability")
    assert (slo.labels, slo.min_events) == ({}, 0)


def test_the_slug_cannot_change(writer, service, source):
    post(writer)

    response = writer.patch(f"{URL}checkout-availability/", {"slug": "other"}, format="json")

    assert response.status_code == 400
    assert "cannot change" in response.json()["errors"]["slug"][0]


def test_an_edit_makes_the_slo_due_and_leaves_the_measurement_alone(writer, org, source):
    later = timezone.now() + timedelta(hours=1)
    slo = make_slo(org, "edited", source=source, evaluation={"status": "ok", "due_at": later,
                                                              "budget_remaining": 0.5})  # fmt: skip

    response = writer.patch(f"{URL}edited/", {"name": "Edited"}, format="json")

    assert response.status_code == 200, response.json()
    row = SLOEvaluation.objects.get(slo=slo)
    assert row.due_at <= timezone.now()
    assert (row.status, row.budget_remaining) == ("ok", 0.5)


def test_delete_removes_the_slo_and_resolves_its_open_alerts(writer, org, source):
    from controlplane.slo import alerts as slo_alerts
    from controlplane.slo.maths import tiers

    slo = make_slo(org, "doomed", source=source)
    fast = tiers(timedelta(days=30))[0]
    slo_alerts.reconcile(slo, [fast], [fast], {"1h": 20.0, "5m": 20.0}, BEAT)
    assert Alert.objects.filter(slo=slo, state=Alert.State.FIRING).exists()

    response = writer.delete(f"{URL}doomed/")

    assert response.status_code == 204
    assert not SLO.objects.filter(slug="doomed").exists()
    assert not Alert.objects.exclude(state=Alert.State.RESOLVED).filter(rule_key="slo.burn_rate")


def test_a_read_token_cannot_write(api, read_token, service, source):
    response = post(api(read_token))

    assert response.status_code == 403
    assert not SLO.objects.exists()


def test_a_write_token_of_another_organisation_cannot_touch_ours(api, org, other_org):
    make_slo(org, "ours")
    theirs = api(ApiToken.issue(other_org, ApiToken.Scope.WRITE)[1])

    assert theirs.get(f"{URL}ours/").status_code == 404
    assert theirs.patch(f"{URL}ours/", {"name": "Mine"}, format="json").status_code == 404
    assert theirs.put(f"{URL}ours/", DOCUMENT, format="json").status_code == 404
    assert theirs.delete(f"{URL}ours/").status_code == 404
    assert SLO.objects.get(slug="ours").name == "Ours"


def test_a_document_cannot_name_another_organisations_source(writer, other_org, prometheus):
    MetricSource.objects.create(organization=other_org, name="main", url=prometheus.url)

    response = post(writer)

    assert response.status_code == 400
    assert "Unknown source 'main'" in response.json()["errors"]["source"][0]


def test_a_manager_creates_in_the_organisation_named(client, member, org, source):
    client.force_login(member(org, Role.MANAGER))

    response = client.post(
        f"{URL}?organization={org.slug}", {**DOCUMENT, "service": None}, "application/json"
    )

    assert response.status_code == 201, response.json()
    assert SLO.objects.get().organization == org


def test_a_viewer_cannot_write(client, member, org, source):
    client.force_login(member(org, Role.VIEWER))

    response = client.post(URL, {**DOCUMENT, "service": None}, "application/json")

    assert response.status_code == 403


# --- history -------------------------------------------------------------------------------

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


@pytest.fixture
def frozen(monkeypatch):
    monkeypatch.setattr(slo_api.timezone, "now", lambda: NOW)
    return NOW


def snapshot(slo: SLO, at: datetime, **fields) -> SLOSnapshot:
    values = {"status": "ok", "sli": 0.999, "budget_remaining": 0.5, "burn_rates": {"1h": 1.0},
              "events": 100.0, "trace_id": "ab" * 16, **fields}  # fmt: skip
    return SLOSnapshot.objects.create(slo=slo, at=at, **values)


def history(client, slug: str = "api-availability", **params):
    query = "&".join(f"{key}={value}" for key, value in params.items())
    return client.get(f"{URL}{slug}/history/" + (f"?{query}" if query else ""))


def test_history_defaults_to_the_slo_window_in_time_order(reader, org, frozen):
    slo = make_slo(org, window="7d")
    snapshot(slo, NOW - timedelta(days=8))  # before the window
    snapshot(slo, NOW - timedelta(hours=1), status="warning", burn_rates={"1h": 4.0})
    snapshot(slo, NOW - timedelta(days=6), budget_remaining=0.9)

    body = history(reader).json()

    assert body["since"] == "2026-11-30T12:00:00Z"
    assert body["until"] == "2026-12-07T12:00:00Z"
    assert body["name"] == slo.name
    assert [s["at"] for s in body["snapshots"]] == ["2026-12-01T12:00:00Z", "2026-12-07T11:00:00Z"]
    latest = body["snapshots"][-1]
    assert latest == {
        "at": "2026-12-07T11:00:00Z",
        "status": "warning",
        "sli": 0.999,
        "budget_remaining": 0.5,
        "burn_rates": {**dict.fromkeys(WINDOWS), "1h": 4.0},
        "events": 100.0,
        "current_value": None,  # RPO and RTO only
        "trace_id": "ab" * 16,
    }
    assert (body["truncated"], body["next"]) == (False, None)


def test_history_of_a_calendar_slo_starts_at_its_period(reader, org, frozen):
    make_slo(org, window="month", time_zone="Europe/Paris")

    body = history(reader).json()

    assert body["since"] == "2026-11-30T23:00:00Z"  # 1 December, midnight in Paris


@pytest.mark.parametrize(
    ("params", "first", "last"),
    [
        ({"since": "2026-12-07T09:00:00Z", "until": "2026-12-07T10:00:00Z"}, 9, 10),
        ({"since": "2026-12-07T10:00:00%2B01:00"}, 9, 11),  # an encoded + offset
        ({"since": "2026-12-07T10:00:00+01:00", "until": "2026-12-07T12:00:00+02:00"}, 9, 10),
        ({"since": str(int(datetime(2026, 12, 7, 10, tzinfo=UTC).timestamp()))}, 10, 11),
        ({"until": "1796634000.5"}, 0, 9),  # 2026-12-07T09:00:00.5Z
    ],
)
def test_history_span_in_iso_8601_or_unix_seconds(reader, org, frozen, params, first, last):
    slo = make_slo(org)
    for hour in range(12):
        snapshot(slo, NOW.replace(hour=hour))

    body = history(reader, **params).json()

    hours = [datetime.fromisoformat(s["at"]).hour for s in body["snapshots"]]
    assert (hours[0], hours[-1]) == (first, last)
    assert hours == sorted(hours)


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ({"since": "yesterday"}, "since", "ISO 8601"),
        ({"until": "2026-12-07T10:00:00"}, "until", "with its offset"),
        ({"since": "2026-13-40T00:00:00Z"}, "since", "ISO 8601"),
        ({"since": "999999999999"}, "since", "ISO 8601"),  # the year 33658
        ({"until": "0001-01-01T00:00:00Z"}, "until", "out of range"),
        ({"since": "2026-12-07T11:00:00Z", "until": "2026-12-07T10:00:00Z"}, "since", "after"),
        ({"since": "2025-01-01T00:00:00Z"}, "since", "At most 400 days"),
    ],
)
def test_bad_history_spans_are_400_naming_the_parameter(reader, org, frozen, params, field, words):
    make_slo(org)

    response = history(reader, **params)

    assert response.status_code == 400, response.json()
    assert words in response.json()["errors"][field][0]


def test_history_past_its_most_snapshots_links_the_rest(reader, org, frozen, monkeypatch):
    monkeypatch.setattr(slo_api, "MOST_SNAPSHOTS", 3)
    slo = make_slo(org)
    for minute in range(5):
        snapshot(slo, NOW - timedelta(minutes=10 - minute))

    first = history(reader).json()
    rest = reader.get(first["next"]).json()

    assert first["truncated"] is True
    assert len(first["snapshots"]) == 3
    assert [s["at"] for s in rest["snapshots"]] == ["2026-12-07T11:53:00Z", "2026-12-07T11:54:00Z"]
    assert (rest["truncated"], rest["next"]) == (False, None)


def test_history_costs_the_same_queries_for_few_or_many_snapshots(
    reader, org, frozen, django_assert_max_num_queries
):
    slo = make_slo(org)
    history(reader)  # the token's first use is written once
    for minute in range(200):
        snapshot(slo, NOW - timedelta(minutes=minute))

    with django_assert_max_num_queries(3):  # the token, the SLO, its snapshots
        body = history(reader).json()

    assert len(body["snapshots"]) == 200
