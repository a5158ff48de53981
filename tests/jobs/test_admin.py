"""Job monitors and ping keys in the admin: checked by the model's clean(), naming the field;
the state shown read-only; the latest runs only; pause and resume through the recorder;
the keys for managers only; behind the organisation walls."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from controlplane.catalog.models import Membership, Role, Service
from controlplane.jobs.models import JobMonitor, JobMonitorState, JobRun, PingKey
from tests.factories import make_channel, make_job, make_policy

pytestmark = pytest.mark.django_db

JOBS = "/admin/jobs/jobmonitor/"
KEYS = "/admin/jobs/pingkey/"
AT = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)


@pytest.fixture
def manager(client, member, org):
    client.force_login(member(org, Role.MANAGER))
    return client


@pytest.fixture
def viewer(client, member, org):
    client.force_login(member(org, Role.VIEWER))
    return client


def form(org, **changes) -> dict:
    data = {
        "organization": org.pk,
        "slug": "payroll-export",
        "name": "Payroll export",
        "kind": "payroll",
        "service": "",
        "schedule_kind": "cron",
        "cron": "0 2 * * *",
        "time_zone": "Europe/Paris",
        "period": "",
        "grace": "30m",
        "min_duration": "1m",
        "max_duration": "2h",
        "ping_key": "",
        "runbook": "",
        "escalation_policy": "",
        # The runs inline (read-only: nothing posted but its management form).
        "runs-TOTAL_FORMS": "0",
        "runs-INITIAL_FORMS": "0",
        "runs-MIN_NUM_FORMS": "0",
        "runs-MAX_NUM_FORMS": "1000",
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def errors_of(response) -> dict:
    assert response.status_code == 200, "the form was accepted"
    return response.context["adminform"].form.errors


def listed(client, query: str = "") -> set[str]:
    response = client.get(f"{JOBS}?{query}")
    assert response.status_code == 200
    return {str(monitor) for monitor in response.context["cl"].result_list}


# --- adding and changing -------------------------------------------------------------------


def test_a_manager_adds_a_monitor_with_its_state_and_the_default_key(manager, org):
    response = manager.post(f"{JOBS}add/", form(org))

    assert response.status_code == 302, errors_of(response)
    monitor = JobMonitor.objects.get(organization=org, slug="payroll-export")
    assert (monitor.cron, monitor.time_zone, monitor.period) == ("0 2 * * *", "Europe/Paris", None)
    assert (monitor.grace, monitor.min_duration, monitor.max_duration) == (
        timedelta(minutes=30),
        timedelta(minutes=1),
        timedelta(hours=2),
    )
    assert monitor.ping_key == PingKey.objects.get(organization=org, name="default")
    assert JobMonitorState.objects.get(monitor=monitor).status == "new"


def test_a_period_schedule_keeps_no_cron_expression(manager, org):
    data = form(org, schedule_kind="period", period="1h", cron="0 2 * * *")

    response = manager.post(f"{JOBS}add/", data)

    assert response.status_code == 302, errors_of(response)
    monitor = JobMonitor.objects.get()
    assert (monitor.schedule_kind, monitor.cron, monitor.period) == (
        "period",
        "",
        timedelta(hours=1),
    )


def test_a_change_leaves_the_state_alone(manager, org):
    monitor = make_job(org, state={"status": "failed", "last_failure": AT, "version": 4})

    response = manager.post(f"{JOBS}{monitor.pk}/change/", form(org, name="Renamed"))

    assert response.status_code == 302, errors_of(response)
    monitor.refresh_from_db()
    assert monitor.name == "Renamed"
    state = JobMonitorState.objects.get(monitor=monitor)
    assert (state.status, state.last_failure, state.version) == ("failed", AT, 4)


def test_a_monitor_keeps_its_organisation_and_slug(client, member, org, other_org):
    user = member(org, Role.MANAGER)
    Membership.objects.create(organization=other_org, user=user, role=Role.MANAGER)
    client.force_login(user)
    monitor = make_job(org)

    response = client.post(
        f"{JOBS}{monitor.pk}/change/", form(org, organization=other_org.pk, slug="renamed")
    )

    assert response.status_code == 302, errors_of(response)
    monitor.refresh_from_db()
    assert (monitor.organization, monitor.slug) == (org, "payroll-export")
    page = client.get(f"{JOBS}{monitor.pk}/change/").content.decode()
    assert 'name="organization"' not in page
    assert 'name="slug"' not in page


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"cron": "61 * * * *"}, "cron", "Bad minute"),
        ({"cron": "0 2 * *"}, "cron", "Wrong number of fields"),
        ({"cron": ""}, "cron", "needs an expression"),
        ({"schedule_kind": "period", "period": ""}, "period", "needs a period"),
        ({"schedule_kind": "period", "period": "30s"}, "period", "from 1 minute"),
        ({"schedule_kind": "period", "period": "hourly"}, "period", "not valid"),
        ({"grace": "0s"}, "grace", "above zero"),
        ({"grace": ""}, "grace", "required"),
        ({"min_duration": "3h"}, "min_duration", "below the maximum duration"),
        ({"max_duration": "0s"}, "max_duration", "above zero"),
        ({"time_zone": "Mars/Olympus"}, "time_zone", "Mars/Olympus"),
        ({"slug": "Not A Slug"}, "slug", "lowercase"),
        ({"kind": "Nightly Stuff"}, "kind", "etl, payroll"),
    ],
)
def test_bad_input_is_refused_naming_the_field(manager, org, changes, field, words):
    response = manager.post(f"{JOBS}add/", form(org, **changes))

    errors = errors_of(response)
    assert field in errors, errors
    assert words in " ".join(errors[field]), errors
    assert not JobMonitor.objects.exists()


def test_a_slug_taken_in_the_organisation_is_refused(manager, org):
    make_job(org)

    response = manager.post(f"{JOBS}add/", form(org))

    assert "already exists" in str(errors_of(response))
    assert JobMonitor.objects.count() == 1


# --- the walls -----------------------------------------------------------------------------


def test_a_manager_sees_and_picks_only_their_organisations_rows(manager, org, other_org):
    make_job(org, "ours")
    theirs = make_job(other_org, "theirs")
    foreign_service = Service.objects.create(organization=other_org, slug="ledger", name="L")
    foreign_policy = make_policy(
        other_org,
        "their-policy",
        steps=[(0, [make_channel(other_org, "mail", "email", to=["x@example.com"])])],
    )

    fields = manager.get(f"{JOBS}add/").context["adminform"].form.fields

    assert listed(manager) == {"ours"}
    assert list(fields["ping_key"].queryset) == [PingKey.objects.get(organization=org)]
    assert foreign_service not in fields["service"].queryset
    assert foreign_policy not in fields["escalation_policy"].queryset
    assert list(fields["organization"].queryset) == [org]
    assert manager.get(f"{JOBS}{theirs.pk}/change/").status_code == 302  # "missing"


def test_a_ping_key_of_another_organisation_is_refused(client, member, org, other_org):
    # A manager of one organisation who views another cannot give its key to a monitor.
    user = member(org, Role.MANAGER)
    Membership.objects.create(organization=other_org, user=user, role=Role.VIEWER)
    client.force_login(user)
    foreign = PingKey.objects.create(organization=other_org)

    response = client.post(f"{JOBS}add/", form(org, ping_key=foreign.pk))

    assert "belongs to another organisation" in " ".join(errors_of(response)["ping_key"])


def test_a_viewer_reads_but_cannot_change_and_sees_no_key(viewer, org):
    monitor = make_job(org)
    key = monitor.ping_key.key

    page = viewer.get(f"{JOBS}{monitor.pk}/change/")

    assert page.status_code == 200
    assert key not in page.content.decode()
    assert viewer.get(f"{JOBS}add/").status_code == 403
    response = viewer.post(f"{JOBS}{monitor.pk}/change/", form(org, name="Mine"))
    assert response.status_code == 403
    monitor.refresh_from_db()
    assert monitor.name == "Payroll export"


def test_a_manager_sees_the_ping_url(manager, org, settings):
    settings.SITE_URL = "https://cp.example"
    monitor = make_job(org)

    page = manager.get(f"{JOBS}{monitor.pk}/change/").content.decode()

    assert f"https://cp.example/ping/{monitor.ping_key.key}/payroll-export" in page


# --- the state and the runs, shown ---------------------------------------------------------


def test_the_list_shows_schedule_and_status_from_the_state(manager, org):
    make_job(org, time_zone="Europe/Paris", state={"status": "late", "last_success": AT})

    content = manager.get(JOBS).content.decode()

    assert "0 2 * * * in Europe/Paris" in content
    assert ">Late<" in content


def test_filters_by_kind_and_status_and_search(manager, org):
    make_job(org, "payroll", kind="payroll", state={"status": "failed"})
    make_job(org, "backup", kind="backup", name="Nightly backup", state={"status": "up"})
    make_job(org, "etl", kind="etl", schedule_kind="period", cron="", period=timedelta(hours=1))

    assert listed(manager, "kind=backup") == {"backup"}
    assert listed(manager, "state__status__exact=failed") == {"payroll"}
    assert listed(manager, "state__status__exact=new") == {"etl"}
    assert listed(manager, "schedule_kind__exact=period") == {"etl"}
    assert listed(manager, "q=nightly") == {"backup"}


def test_the_change_page_shows_the_state_read_only(manager, org):
    monitor = make_job(
        org, state={"status": "failed", "last_outcome": "timeout", "next_expected": AT}
    )

    page = manager.get(f"{JOBS}{monitor.pk}/change/").content.decode()

    assert "Failed" in page
    assert "timeout" in page
    assert 'name="status"' not in page  # shown, not a field of the form
    assert 'name="next_expected"' not in page


def test_the_latest_runs_only_newest_first_in_bounded_queries(manager, org, settings):
    settings.TRACE_URL_TEMPLATE = "https://tempo.example/trace/{trace_id}"
    monitor = make_job(org)
    JobRun.objects.bulk_create(
        JobRun(
            monitor=monitor,
            created_at=AT + timedelta(hours=n),
            started_at=AT + timedelta(hours=n),
            outcome="success",
            duration=timedelta(seconds=n),
            exit_code=n,
            excerpt=f"<script>run {n}</script>",
            trace_id=f"{n:032x}",
        )
        for n in range(80)
    )

    def queries() -> tuple[int, str]:
        with CaptureQueriesContext(connection) as captured:
            response = manager.get(f"{JOBS}{monitor.pk}/change/")
        return len(captured), response.content.decode()

    many, page = queries()
    JobRun.objects.filter(created_at__lt=AT + timedelta(hours=70)).delete()
    few, _ = queries()

    shown = re.findall(r"&lt;script&gt;run (\d+)&lt;/script&gt;", page)
    assert [int(n) for n in shown] == list(range(79, 29, -1))  # 50, newest first
    assert "<script>run" not in page
    assert f'href="https://tempo.example/trace/{79:032x}"' in page
    assert many == few
    assert 'name="runs-0-outcome"' not in page  # read-only


def test_the_runs_do_not_stop_a_change_from_saving(manager, org):
    monitor = make_job(org)
    JobRun.objects.create(monitor=monitor, started_at=AT, outcome="success")
    data = form(org, name="Renamed", **{"runs-TOTAL_FORMS": "1", "runs-INITIAL_FORMS": "1"})

    response = manager.post(f"{JOBS}{monitor.pk}/change/", data)

    assert response.status_code == 302, errors_of(response)
    assert JobRun.objects.count() == 1


# --- actions -------------------------------------------------------------------------------


def act(client, action: str, *monitors: JobMonitor, follow: bool = True):
    selected = [monitor.pk for monitor in monitors]
    return client.post(JOBS, {"action": action, "_selected_action": selected}, follow=follow)


def test_pause_and_resume_go_through_the_recorder(manager, org):
    monitor = make_job(
        org,
        state={"status": "up", "last_outcome": "success", "next_expected": AT, "version": 3},
    )

    paused = act(manager, "pause", monitor)

    state = JobMonitorState.objects.get(monitor=monitor)
    assert state.status == "paused"
    assert state.version == 4
    assert "1 job monitor(s) paused." in paused.content.decode()
    again = act(manager, "pause", monitor)
    assert "1 left as they were (already paused" in again.content.decode()

    act(manager, "resume", monitor)

    state.refresh_from_db()
    assert state.status == "up"
    assert state.next_expected > AT  # the schedule's next time after now


def test_a_viewer_cannot_pause(viewer, org):
    monitor = make_job(org, state={"status": "up"})

    act(viewer, "pause", monitor)

    assert JobMonitorState.objects.get(monitor=monitor).status == "up"


def test_a_manager_cannot_pause_another_organisations_monitor(manager, org, other_org):
    theirs = make_job(other_org, state={"status": "up"})

    act(manager, "pause", theirs)

    assert JobMonitorState.objects.get(monitor=theirs).status == "up"


# --- ping keys -----------------------------------------------------------------------------


def test_a_key_is_shown_read_only_with_what_it_lets_its_holder_do(manager, org):
    key = PingKey.objects.create(organization=org, name="payroll")

    page = manager.get(f"{KEYS}{key.pk}/change/").content.decode()

    assert key.key in page
    assert 'name="key"' not in page
    assert "bearer secret" in page
    assert "?create=1" in page


def test_a_manager_adds_a_key_made_for_them(manager, org):
    response = manager.post(f"{KEYS}add/", {"organization": org.pk, "name": "etl"})

    assert response.status_code == 302
    key = PingKey.objects.get(name="etl")
    assert len(key.key) >= 20


def test_replacing_a_key_changes_its_monitors_urls(manager, org, other_org):
    monitor = make_job(org)
    old = monitor.ping_key.key
    theirs = PingKey.objects.create(organization=other_org)
    their_key = theirs.key

    response = act_keys(manager, "replace_key", monitor.ping_key, theirs)

    monitor.refresh_from_db()
    assert monitor.ping_key.key != old
    assert PingKey.objects.get(pk=theirs.pk).key == their_key
    assert "1 key(s) replaced" in response.content.decode()


def act_keys(client, action: str, *keys: PingKey):
    selected = [key.pk for key in keys]
    return client.post(KEYS, {"action": action, "_selected_action": selected}, follow=True)


def test_only_managers_see_keys(client, member, org, viewer):
    key = PingKey.objects.create(organization=org)

    assert viewer.get(KEYS).status_code == 403
    assert viewer.get(f"{KEYS}{key.pk}/change/").status_code == 403
    client.force_login(member(org, Role.RESPONDER))
    assert client.get(KEYS).status_code == 403


def test_the_key_list_counts_each_keys_monitors(manager, org):
    make_job(org, "a")
    make_job(org, "b")
    PingKey.objects.create(organization=org, name="spare")

    content = manager.get(KEYS).content.decode()

    assert re.search(r'field-monitor_count">2<', content)
    assert re.search(r'field-monitor_count">0<', content)
