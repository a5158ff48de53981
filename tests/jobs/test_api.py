"""Job monitors through the API: the document in, the same document out with what pings
reported, refusals naming the document's fields, runs newest first, and run reports
with a token, behind the organisation walls."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import IntegrityError, connection
from django.test.utils import CaptureQueriesContext

from controlplane.catalog.models import ApiToken, Role, Service
from controlplane.jobs.forms import read_schedule
from controlplane.jobs.models import EXCERPT_LIMIT, JobMonitor, JobMonitorState, JobRun, PingKey
from tests.factories import make_channel, make_job, make_policy, make_runbook

pytestmark = pytest.mark.django_db

URL = "/api/v1/jobs/"
SITE = "https://cp.example"
DOCUMENT = {
    "slug": "payroll-export",
    "name": "Payroll export",
    "kind": "payroll",
    "service": "checkout",
    "schedule": "0 2 * * *",
    "time_zone": "Europe/Paris",
    "grace": "30m",
    "min_duration": "1m",
    "max_duration": "2h",
    "runbook": None,
    "escalation_policy": None,
}
STATE_FIELDS = {"status", "last_start", "last_success", "last_failure", "next_expected"}
READ_ONLY = STATE_FIELDS | {"ping_url", "url"}
AT = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture(autouse=True)
def site(settings):
    settings.SITE_URL = SITE
    settings.TRACE_URL_TEMPLATE = "https://tempo.example/trace/{trace_id}"


@pytest.fixture
def writer(api, write_token):
    return api(write_token)


@pytest.fixture
def reader(api, read_token):
    return api(read_token)


def post(client, body=DOCUMENT, **changes):
    return client.post(URL, {**body, **changes}, format="json")


def key_of(org) -> str:
    return PingKey.objects.get(organization=org, name="default").key


# --- reading -------------------------------------------------------------------------------


def test_the_list_shows_each_monitor_with_its_status(writer, org, service):
    make_job(
        org,
        service=service,
        max_duration=timedelta(hours=2),
        state={
            "status": JobMonitorState.Status.FAILED,
            "last_start": AT,
            "last_success": AT - timedelta(days=1),
            "last_failure": AT + timedelta(minutes=5),
            "next_expected": AT + timedelta(days=1),
        },
    )

    body = writer.get(URL).json()

    assert body["count"] == 1
    (job,) = body["results"]
    assert {key: job[key] for key in DOCUMENT} == {
        **DOCUMENT,
        "time_zone": "UTC",
        "grace": "15m",
        "min_duration": None,
        "service": "checkout",
    }
    assert job["status"] == "failed"
    assert job["last_start"] == "2026-12-07T02:00:00Z"
    assert job["last_success"] == "2026-12-06T02:00:00Z"
    assert job["last_failure"] == "2026-12-07T02:05:00Z"
    assert job["next_expected"] == "2026-12-08T02:00:00Z"
    assert job["ping_url"] == f"{SITE}/ping/{key_of(org)}/payroll-export"
    assert job["url"] == "http://testserver/jobs/payroll-export/"
    assert set(job) == set(DOCUMENT) | READ_ONLY


def test_a_period_schedule_reads_as_a_duration(reader, org):
    make_job(org, "hourly-sync", schedule_kind="period", cron="", period=timedelta(hours=1))

    (job,) = reader.get(URL).json()["results"]

    assert job["schedule"] == "1h"


def test_the_ping_url_is_null_for_those_who_may_not_write(reader, client, member, org):
    make_job(org)
    client.force_login(member(org, Role.VIEWER))

    # Its key lets anyone report runs, as Healthchecks' read-only keys see no ping URL.
    assert reader.get(f"{URL}payroll-export/").json()["ping_url"] is None
    assert client.get(f"{URL}payroll-export/").json()["ping_url"] is None
    client.force_login(member(org, Role.MANAGER))
    assert client.get(f"{URL}payroll-export/").json()["ping_url"].startswith(f"{SITE}/ping/")


def test_a_monitor_saved_without_its_state_is_new(reader, org):
    JobMonitorState.objects.filter(monitor=make_job(org)).delete()

    (job,) = reader.get(URL).json()["results"]

    assert job["status"] == "new"
    assert job["last_start"] is None
    assert reader.get(f"{URL}?status=new").json()["count"] == 1


def _queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured.captured_queries)


def test_the_list_costs_the_same_queries_for_3_monitors_as_for_30(
    writer, org, service, django_assert_max_num_queries
):
    mail = make_channel(org, "oncall-mail", "email", to=["oncall@example.com"])
    policy = make_policy(org, "jobs-policy", steps=[(0, [mail])])
    runbook = make_runbook(org, "payroll-runbook")

    def make(n: int) -> None:
        make_job(org, f"job-{n:02}", service=service, escalation_policy=policy, runbook=runbook)

    for n in range(3):
        make(n)
    writer.get(URL)  # the token's first use is written once
    three = _queries(writer, URL)
    for n in range(3, 30):
        make(n)
    thirty = _queries(writer, URL)

    assert thirty == three
    with django_assert_max_num_queries(3):  # the token, the count, the page
        body = writer.get(URL).json()
    assert body["count"] == 30
    assert {j["escalation_policy"] for j in body["results"]} == {"jobs-policy"}
    assert {j["runbook"] for j in body["results"]} == {"payroll-runbook"}
    assert all(j["ping_url"] for j in body["results"])


def test_filters_by_status_kind_and_service(reader, org, service):
    other = Service.objects.create(organization=org, slug="ledger", name="Ledger")
    make_job(org, "a", service=service, kind="payroll", state={"status": "up"})
    make_job(org, "b", service=service, kind="etl", state={"status": "failed"})
    make_job(org, "c", service=other, kind="etl", state={"status": "failed"})

    def slugs(query: str) -> list[str]:
        return [j["slug"] for j in reader.get(f"{URL}?{query}").json()["results"]]

    assert slugs("status=failed") == ["b", "c"]
    assert slugs("kind=etl") == ["b", "c"]
    assert slugs("service=checkout") == ["a", "b"]
    assert slugs("service=checkout&status=failed&kind=etl") == ["b"]
    assert slugs("kind=backup") == []


def test_an_unknown_status_filter_is_400_naming_the_choices(reader, org):
    response = reader.get(f"{URL}?status=broken")

    assert response.status_code == 400
    assert "late" in response.json()["errors"]["status"][0]


def test_the_list_is_paginated(reader, org):
    for n in range(55):
        make_job(org, f"job-{n:02}")

    body = reader.get(URL).json()

    assert body["count"] == 55
    assert len(body["results"]) == 50
    assert body["next"].endswith("page=2")


# --- writing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "read"),
    [
        ("1h", ("period", "", timedelta(hours=1))),
        (" 1d12h ", ("period", "", timedelta(days=1, hours=12))),
        ("0s", ("period", "", timedelta(0))),  # refused by the model: below a minute
        ("0 2 * * *", ("cron", "0 2 * * *", None)),
        ("  */15 * * * 1-5 ", ("cron", "*/15 * * * 1-5", None)),
        ("61 * * * *", ("cron", "61 * * * *", None)),  # refused by the model: Bad minute
    ],
)
def test_a_schedule_is_a_period_when_it_reads_as_a_duration(text, read):
    assert read_schedule(text) == read


@pytest.mark.parametrize("text", ["", "  ", "hourly", "5x", "@daily", "1hx"])
def test_one_word_that_is_no_duration_is_neither(text):
    with pytest.raises(ValueError, match=r'Give a cron expression such as "0 2 \* \* \*"'):
        read_schedule(text)


def test_a_created_monitor_reads_back_as_its_document(writer, org, service):
    created = post(writer)

    assert created.status_code == 201, created.json()
    body = writer.get(f"{URL}payroll-export/").json()
    assert {key: body[key] for key in DOCUMENT} == DOCUMENT
    assert created.json() == body
    assert body["status"] == "new"
    monitor = JobMonitor.objects.get(slug="payroll-export")
    assert (monitor.schedule_kind, monitor.cron, monitor.period) == ("cron", "0 2 * * *", None)
    assert (monitor.grace, monitor.max_duration) == (timedelta(minutes=30), timedelta(hours=2))
    # Its state row, for the pings to write, and the organisation's default ping key.
    assert JobMonitorState.objects.get(monitor=monitor).status == "new"
    assert monitor.ping_key.name == "default"
    assert body["ping_url"] == f"{SITE}/ping/{monitor.ping_key.key}/payroll-export"


def test_a_duration_is_a_period_anything_else_a_cron_expression(writer, org):
    assert post(writer, slug="hourly", schedule="1h", service=None).status_code == 201
    assert post(writer, slug="nightly", schedule=" 30 1 * * 1-5 ", service=None).status_code == 201

    hourly = JobMonitor.objects.get(slug="hourly")
    nightly = JobMonitor.objects.get(slug="nightly")
    assert (hourly.schedule_kind, hourly.cron, hourly.period) == ("period", "", timedelta(hours=1))
    assert (nightly.schedule_kind, nightly.cron, nightly.period) == ("cron", "30 1 * * 1-5", None)
    assert writer.get(f"{URL}hourly/").json()["schedule"] == "1h"


def test_defaults_fill_what_a_document_leaves_out(writer, org):
    response = post(writer, {"slug": "backup", "name": "Backup", "schedule": "1d"})

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["kind"], body["time_zone"], body["grace"]) == ("etl", "UTC", "15m")
    assert (body["min_duration"], body["max_duration"], body["service"]) == (None, None, None)
    assert body["schedule"] == "1d"


def test_every_monitor_of_an_organisation_shares_its_default_key(writer, org):
    post(writer, service=None)
    post(writer, slug="second", service=None)

    assert PingKey.objects.filter(organization=org).count() == 1
    assert {m.ping_key.key for m in JobMonitor.objects.all()} == {key_of(org)}


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"schedule": "61 * * * *"}, "schedule", "Bad minute"),
        ({"schedule": "0 2 * *"}, "schedule", "Wrong number of fields"),
        ({"schedule": "hourly"}, "schedule", 'a period such as "1h"'),
        ({"schedule": ""}, "schedule", "may not be blank"),
        ({"schedule": "30s"}, "schedule", "from 1 minute to 365 days"),
        ({"schedule": "0"}, "schedule", "from 1 minute to 365 days"),
        ({"grace": "0s"}, "grace", "above zero"),
        ({"grace": "8d"}, "grace", "at most 7 days"),
        ({"grace": "fifteen"}, "grace", "not valid"),
        ({"grace": None}, "grace", "may not be null"),
        ({"min_duration": "3h"}, "min_duration", "below the maximum duration"),
        ({"min_duration": "2h"}, "min_duration", "below the maximum duration"),
        ({"max_duration": "0s"}, "max_duration", "above zero"),
        ({"max_duration": "-1m"}, "max_duration", "negative"),
        ({"time_zone": "Mars/Olympus"}, "time_zone", "Mars/Olympus"),
        ({"slug": "Not A Slug"}, "slug", "lowercase"),
        ({"kind": "Nightly Stuff"}, "kind", "etl, payroll"),
        ({"name": ""}, "name", "may not be blank"),
        ({"service": "nothing"}, "service", "Unknown service 'nothing'"),
        ({"runbook": "nothing"}, "runbook", "Unknown runbook 'nothing'"),
        ({"escalation_policy": "nobody"}, "escalation_policy", "Unknown escalation policy"),
        ({"status": "up", "no_such_field": 1}, "no_such_field", "Unknown field"),
    ],
)
def test_bad_documents_are_400_naming_the_field(writer, service, changes, field, words):
    response = post(writer, **changes)

    assert response.status_code == 400, response.json()
    body = response.json()
    assert field in body["errors"], body
    assert words in " ".join(body["errors"][field]), body
    assert body["detail"].startswith("Invalid input.")
    assert not JobMonitor.objects.exists()


def test_a_required_field_left_out_is_named(writer):
    response = post(writer, {"slug": "x"})

    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"name", "schedule"}


def test_a_lone_surrogate_is_refused_naming_its_field(writer):
    body = json.dumps({**DOCUMENT, "service": "\ud800"}).encode()  # valid JSON: \ud800

    response = writer.generic("POST", URL, body, content_type="application/json")

    assert response.status_code == 400
    assert "surrogate" in response.json()["errors"]["service"][0]


def test_read_only_fields_sent_back_are_ignored(writer, service):
    read = {**DOCUMENT, "status": "up", "ping_url": "https://evil.example/", "url": "x"}

    response = post(writer, read)

    assert response.status_code == 201, response.json()
    assert response.json()["status"] == "new"
    assert JobMonitorState.objects.get().status == "new"


def test_a_duplicate_slug_is_refused(writer, service):
    assert post(writer).status_code == 201

    response = post(writer)

    assert response.status_code == 400
    assert "exists" in response.json()["errors"]["slug"][0]
    assert JobMonitor.objects.count() == 1


def test_a_monitor_created_concurrently_under_the_same_slug_is_a_clear_400(
    writer, org, service, monkeypatch
):
    checking = JobMonitor.full_clean

    def racing(monitor, *args, **kwargs):
        checking(monitor, *args, **kwargs)
        # Another request inserts the same slug between this check and this insert.
        JobMonitor.objects.create(organization=org, slug=monitor.slug, name="The other one")

    monkeypatch.setattr(JobMonitor, "full_clean", racing)

    response = post(writer)

    assert response.status_code == 400, response.content
    assert "exists" in response.json()["errors"]["slug"][0]
    assert JobMonitor.objects.get(slug="payroll-export").name == "The other one"


def test_other_clashes_on_save_are_a_409(writer, org, monkeypatch):
    make_job(org)

    def clash(*args, **kwargs):
        raise IntegrityError("violates foreign key constraint")

    monkeypatch.setattr(JobMonitor, "save", clash)

    response = writer.patch(f"{URL}payroll-export/", {"name": "Renamed"}, format="json")

    assert response.status_code == 409, response.json()
    assert "at the same time" in response.json()["detail"]


def test_patch_changes_only_what_it_names(writer, org, service):
    post(writer)

    response = writer.patch(f"{URL}payroll-export/", {"schedule": "15m"}, format="json")

    assert response.status_code == 200, response.json()
    monitor = JobMonitor.objects.get(slug="payroll-export")
    assert (monitor.schedule_kind, monitor.cron, monitor.period) == (
        "period",
        "",
        timedelta(minutes=15),
    )
    assert monitor.min_duration == timedelta(minutes=1)
    assert monitor.service == service
    assert response.json()["schedule"] == "15m"


def test_patch_with_bad_input_changes_nothing(writer, org, service):
    post(writer)

    response = writer.patch(f"{URL}payroll-export/", {"max_duration": "30s"}, format="json")

    assert response.status_code == 400
    assert "below the maximum" in response.json()["errors"]["min_duration"][0]
    assert JobMonitor.objects.get().max_duration == timedelta(hours=2)


def test_the_slug_cannot_change(writer, org):
    make_job(org)

    response = writer.patch(f"{URL}payroll-export/", {"slug": "other"}, format="json")

    assert response.status_code == 400
    assert "cannot change" in response.json()["errors"]["slug"][0]
    same = writer.patch(f"{URL}payroll-export/", {"slug": "payroll-export"}, format="json")
    assert same.status_code == 200


def test_put_is_not_offered(writer, org):
    make_job(org)

    assert writer.put(f"{URL}payroll-export/", DOCUMENT, format="json").status_code == 405


def test_an_edit_leaves_the_state_alone(writer, org):
    monitor = make_job(org, state={"status": "failed", "last_failure": AT, "version": 7})

    response = writer.patch(f"{URL}payroll-export/", {"name": "Renamed"}, format="json")

    assert response.status_code == 200, response.json()
    state = JobMonitorState.objects.get(monitor=monitor)
    assert (state.status, state.last_failure, state.version) == ("failed", AT, 7)
    assert response.json()["status"] == "failed"


def test_delete_removes_the_monitor_its_state_and_runs(writer, org):
    monitor = make_job(org)
    JobRun.objects.create(monitor=monitor, started_at=AT, outcome="success")

    response = writer.delete(f"{URL}payroll-export/")

    assert response.status_code == 204
    assert not JobMonitor.objects.exists()
    assert not JobRun.objects.exists()
    assert not JobMonitorState.objects.exists()


def test_a_read_token_and_a_viewer_cannot_write(api, read_token, client, member, org):
    make_job(org)

    assert post(api(read_token), slug="new").status_code == 403
    client.force_login(member(org, Role.VIEWER))
    assert client.post(URL, {**DOCUMENT, "service": None}, "application/json").status_code == 403
    assert client.post(f"{URL}payroll-export/start/").status_code == 403
    assert JobMonitor.objects.count() == 1
    assert not JobRun.objects.exists()


def test_a_manager_creates_in_the_organisation_named(client, member, org):
    client.force_login(member(org, Role.MANAGER))

    response = client.post(
        f"{URL}?organization={org.slug}", {**DOCUMENT, "service": None}, "application/json"
    )

    assert response.status_code == 201, response.json()
    assert JobMonitor.objects.get().organization == org


def test_a_write_token_of_another_organisation_cannot_touch_ours(api, org, other_org):
    monitor = make_job(org)
    JobRun.objects.create(monitor=monitor, started_at=AT, outcome="success")
    theirs = api(ApiToken.issue(other_org, ApiToken.Scope.WRITE)[1])

    assert theirs.get(URL).json()["count"] == 0
    assert theirs.get(f"{URL}payroll-export/").status_code == 404
    assert theirs.get(f"{URL}payroll-export/runs/").status_code == 404
    assert theirs.patch(f"{URL}payroll-export/", {"name": "Mine"}, format="json").status_code == 404
    for kind in ("start", "success", "fail"):
        assert theirs.post(f"{URL}payroll-export/{kind}/", {}, format="json").status_code == 404
    assert theirs.delete(f"{URL}payroll-export/").status_code == 404
    assert JobMonitor.objects.get().name == "Payroll export"
    assert JobRun.objects.count() == 1


def test_a_document_cannot_name_another_organisations_service_or_policy(writer, other_org):
    Service.objects.create(organization=other_org, slug="checkout", name="Theirs")
    mail = make_channel(other_org, "mail", "email", to=["x@example.com"])
    make_policy(other_org, "their-policy", steps=[(0, [mail])])

    response = post(writer, escalation_policy="their-policy")

    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"service", "escalation_policy"}


# --- runs ----------------------------------------------------------------------------------


def test_runs_newest_first_with_their_fields(reader, org):
    monitor = make_job(org)
    rid = uuid.uuid4()
    JobRun.objects.create(
        monitor=monitor, created_at=AT - timedelta(days=1), started_at=AT - timedelta(days=1),
        finished_at=AT - timedelta(days=1) + timedelta(seconds=90), outcome="success",
        duration=timedelta(seconds=90), exit_code=0, excerpt="done", trace_id=TRACE,
    )  # fmt: skip
    JobRun.objects.create(monitor=monitor, created_at=AT + timedelta(minutes=15), outcome="missed")
    JobRun.objects.create(monitor=monitor, created_at=AT + timedelta(days=1), run_id=rid,
                          started_at=AT + timedelta(days=1))  # fmt: skip

    body = reader.get(f"{URL}payroll-export/runs/").json()

    assert body["count"] == 3
    running, missed, success = body["results"]
    assert running["run_id"] == str(rid)
    assert (running["outcome"], running["finished_at"], running["duration"]) == (None, None, None)
    assert (missed["outcome"], missed["started_at"]) == ("missed", None)
    assert success == {
        "run_id": None,
        "started_at": "2026-12-06T02:00:00Z",
        "finished_at": "2026-12-06T02:01:30Z",
        "outcome": "success",
        "duration": 90.0,
        "exit_code": 0,
        "excerpt": "done",
        "excerpt_truncated": False,
        "too_early": False,
        "trace_id": TRACE,
        "trace_url": f"https://tempo.example/trace/{TRACE}",
    }


def test_runs_are_paginated_in_constant_queries(reader, org, django_assert_max_num_queries):
    monitor = make_job(org)
    JobRun.objects.bulk_create(
        JobRun(monitor=monitor, created_at=AT + timedelta(hours=n), outcome="success")
        for n in range(120)
    )
    reader.get(f"{URL}payroll-export/runs/")  # the token's first use is written once

    with django_assert_max_num_queries(4):  # the token, the monitor, the count, the page
        body = reader.get(f"{URL}payroll-export/runs/").json()

    assert body["count"] == 120
    assert len(body["results"]) == 50
    assert body["results"][0]["started_at"] is None
    assert reader.get(body["next"]).json()["next"].endswith("page=3")


# --- reporting runs with a token -----------------------------------------------------------


def report(client, kind: str, body=None, slug: str = "payroll-export", **headers):
    return client.post(f"{URL}{slug}/{kind}/", body, format="json", **headers)


def test_a_start_and_its_success_make_one_run_with_its_duration(writer, org):
    make_job(org)
    rid = str(uuid.uuid4())

    started = report(writer, "start", {"run_id": rid})
    finished = report(writer, "success", {"run_id": rid, "exit_code": 0, "log": "42 rows"})

    assert started.status_code == 200, started.json()
    assert started.json()["status"] == "running"
    assert started.json()["run"]["outcome"] is None
    assert finished.status_code == 200, finished.json()
    body = finished.json()
    assert (body["slug"], body["status"]) == ("payroll-export", "up")
    assert body["run"]["run_id"] == rid
    assert (body["run"]["outcome"], body["run"]["exit_code"]) == ("success", 0)
    assert body["run"]["duration"] >= 0
    assert body["run"]["excerpt"] == "42 rows"
    (run,) = JobRun.objects.all()
    assert run.started_at <= run.finished_at
    state = JobMonitorState.objects.get()
    assert state.last_success == run.finished_at
    assert writer.get(f"{URL}payroll-export/").json()["status"] == "up"


def test_a_failure_with_its_exit_code_fails_the_monitor(writer, org):
    make_job(org)

    response = report(writer, "fail", {"exit_code": 3, "log": "disk full"})

    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "failed"
    run = JobRun.objects.get()
    assert (run.outcome, run.exit_code, run.excerpt) == ("failure", 3, "disk full")


def test_a_report_needs_no_body(writer, org):
    make_job(org)

    response = writer.post(f"{URL}payroll-export/success/")

    assert response.status_code == 200, response.content
    assert JobRun.objects.get().outcome == "success"


def test_the_same_run_id_reported_twice_records_once(writer, org):
    make_job(org)
    rid = str(uuid.uuid4())

    first = report(writer, "fail", {"run_id": rid})
    again = report(writer, "fail", {"run_id": rid})

    assert first.status_code == again.status_code == 200
    assert JobRun.objects.count() == 1
    assert again.json()["run"] == first.json()["run"]


def test_a_long_log_keeps_its_end_and_the_run_is_recorded(writer, org):
    make_job(org)
    log = "x" * (EXCERPT_LIMIT + 500) + "the end"

    response = report(writer, "fail", {"log": log})

    assert response.status_code == 200
    run = JobRun.objects.get()
    assert run.excerpt.endswith("the end")
    assert len(run.excerpt) == EXCERPT_LIMIT
    assert run.excerpt_truncated is True


def test_a_traceparent_joins_the_jobs_trace(writer, org):
    make_job(org)

    response = report(writer, "success", HTTP_TRACEPARENT=f"00-{TRACE}-00f067aa0ba902b7-01")

    assert response.status_code == 200
    assert JobRun.objects.get().trace_id == TRACE
    assert response.json()["run"]["trace_url"] == f"https://tempo.example/trace/{TRACE}"


def test_a_report_resumes_a_paused_monitor(writer, org):
    make_job(org, state={"status": "paused"})

    response = report(writer, "start")

    assert response.json()["status"] == "running"


@pytest.mark.parametrize(
    ("kind", "body", "field", "words"),
    [
        ("start", {"exit_code": 0}, "exit_code", "no exit code"),
        ("success", {"exit_code": 3}, "exit_code", "report exit code 3 to /fail/"),
        ("fail", {"exit_code": 0}, "exit_code", "report it to /success/"),
        ("fail", {"exit_code": 256}, "exit_code", "less than or equal to 255"),
        ("fail", {"exit_code": -1}, "exit_code", "greater than or equal to 0"),
        ("success", {"run_id": "not-a-uuid"}, "run_id", "valid UUID"),
        ("success", {"log": ["x"]}, "log", "valid string"),
        ("success", {"rid": str(uuid.uuid4())}, "rid", "Unknown field"),
        ("success", {"log": "a\u0000b"}, "log", "NUL"),
    ],
)
def test_bad_reports_are_400_naming_the_field(writer, org, kind, body, field, words):
    make_job(org)

    response = report(writer, kind, body)

    assert response.status_code == 400, response.json()
    assert words in " ".join(response.json()["errors"][field]), response.json()
    assert not JobRun.objects.exists()


def test_a_report_for_an_unknown_monitor_is_404(writer, org):
    response = report(writer, "success", slug="no-such-job")

    assert response.status_code == 404
    assert not JobMonitor.objects.exists()
