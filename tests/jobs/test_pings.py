"""The Healthchecks ping API (controlplane/jobs/pings.py): every form and method, the
answers clients read, the body kept as the run's excerpt, run ids, traceparent, and
the per-monitor rate limit."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.test import Client
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from controlplane.jobs import pings
from controlplane.jobs.models import EXCERPT_LIMIT, JobMonitor, JobMonitorState, JobRun, PingKey
from observability import tracing
from tests.factories import make_job

pytestmark = pytest.mark.django_db

CALLER_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CALLER_TRACE_ID}-{CALLER_SPAN_ID}-01"


@pytest.fixture(autouse=True)
def _fresh_counters() -> Iterator[None]:
    # The rate limit counts in the process's cache, across tests.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def job(org) -> JobMonitor:
    return make_job(org, "payroll-export")


@pytest.fixture
def client() -> Client:
    # Pings come from scripts: no cookie, no CSRF token.
    return Client(enforce_csrf_checks=True)


def url(monitor: JobMonitor, suffix: str = "", query: str = "") -> str:
    return f"/ping/{monitor.ping_key.key}/{monitor.slug}{suffix}" + (f"?{query}" if query else "")


def send(client: Client, method: str, path: str, body: bytes = b"", **headers):
    if method == "POST":
        return client.post(path, body, content_type="text/plain", **headers)
    return client.generic(method, path, body, **headers)


def state(monitor: JobMonitor) -> JobMonitorState:
    return JobMonitorState.objects.get(pk=monitor.pk)


def runs(monitor: JobMonitor) -> list[JobRun]:
    return list(JobRun.objects.filter(monitor=monitor).order_by("created_at", "pk"))


def text(response) -> str:
    return response.content.decode()


# --- pure parts ----------------------------------------------------------------------------


class Trickle(io.BytesIO):
    """A stream that gives at most a few bytes per read, as a slow socket does."""

    def read(self, size: int = -1, /) -> bytes:
        return super().read(min(size, 3) if size >= 0 else 3)


@pytest.mark.parametrize(
    ("body", "limit", "most", "kept", "truncated"),
    [
        (b"", 10, 100, b"", False),
        (b"short", 10, 100, b"short", False),
        (b"exactly10!", 10, 100, b"exactly10!", False),
        (b"eleven bytes", 10, 100, b"even bytes", True),
        (b"0123456789" * 50, 10, 100, b"0123456789", True),
        # Past `most` the rest is left unread: the end of what was read is kept.
        (b"a" * 20 + b"b" * 20, 5, 20, b"aaaaa", True),
    ],
)
def test_read_tail_keeps_the_end(body, limit, most, kept, truncated):
    assert pings.read_tail(io.BytesIO(body), limit, most) == (kept, truncated)
    assert pings.read_tail(Trickle(body), limit, most) == (kept, truncated)


def test_read_tail_holds_no_more_than_the_limit():
    class Counting(io.BytesIO):
        reads = 0

        def read(self, size: int = -1, /) -> bytes:
            self.reads += 1
            assert size <= 64 * 1024
            return super().read(size)

    stream = Counting(b"x" * (3 * 1024 * 1024 + 7) + b"END")

    kept, truncated = pings.read_tail(stream, 10)

    assert (kept, truncated) == (b"xxxxxxxEND", True)
    assert stream.reads > 40  # read through in chunks, not at once


@pytest.mark.parametrize(
    ("tail", "truncated", "expected"),
    [
        (b"plain log", False, "plain log"),
        ("déjà vu".encode(), False, "déjà vu"),
        # A cut inside "é" (c3 a9): the orphan continuation byte goes.
        (b"\xa9t\xc3\xa9", True, "té"),
        # Three continuation bytes at most: a cut inside a 4-byte character.
        ("🙂!".encode()[1:], True, "!"),
        # Not cut: a stray continuation byte is the client's, shown as such.
        (b"\xa9t", False, "\ufffdt"),
        (b"nul\x00byte", False, "nul\ufffdbyte"),
        (b"latin-1 \xe9t\xe9", False, "latin-1 \ufffdt\ufffd"),
    ],
)
def test_excerpt_text(tail, truncated, expected):
    assert pings.excerpt_text(tail, truncated) == expected


@pytest.mark.parametrize(
    ("now", "index", "left"),
    [(0.0, 0, 60), (59.2, 0, 1), (59.99, 0, 1), (60.0, 1, 60), (121.5, 2, 59)],
)
def test_window(now, index, left):
    assert pings.window(now) == pings.Window(index, left)


def test_admit_counts_per_name_and_window():
    now = [1000 * 60 + 10.0]

    def clock() -> float:
        return now[0]

    assert [pings.admit("a", 2, clock) for _ in range(3)] == [None, None, 50]
    assert pings.admit("b", 2, clock) is None
    now[0] += 50  # the next window
    assert pings.admit("a", 2, clock) is None


def test_admit_lets_pings_through_when_the_cache_fails(monkeypatch):
    def broken(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr(pings.cache, "add", broken)

    assert pings.admit("a", 0) is None


# --- every form and method -----------------------------------------------------------------

FORMS = [
    # suffix, exit code, outcome of the run, status after
    ("", None, JobRun.Outcome.SUCCESS, JobMonitorState.Status.UP),
    ("/fail", None, JobRun.Outcome.FAILURE, JobMonitorState.Status.FAILED),
    ("/0", 0, JobRun.Outcome.SUCCESS, JobMonitorState.Status.UP),
    ("/3", 3, JobRun.Outcome.FAILURE, JobMonitorState.Status.FAILED),
    ("/255", 255, JobRun.Outcome.FAILURE, JobMonitorState.Status.FAILED),
]


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST"])
@pytest.mark.parametrize(("suffix", "exit_code", "outcome", "status"), FORMS)
def test_a_finish_in_every_form_and_method(client, job, method, suffix, exit_code, outcome, status):
    response = send(client, method, url(job, suffix))

    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response["Ping-Body-Limit"] == str(EXCERPT_LIMIT)
    assert text(response) == ("" if method == "HEAD" else "OK")
    [run] = runs(job)
    assert (run.outcome, run.exit_code, run.finished_at is not None) == (outcome, exit_code, True)
    assert state(job).status == status


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST"])
def test_start_then_finish_in_every_method(client, job, method):
    started = send(client, method, url(job, "/start"))

    assert started.status_code == 200
    [run] = runs(job)
    assert (run.started_at is not None, run.outcome) == (True, "")
    assert state(job).status == JobMonitorState.Status.RUNNING

    assert send(client, method, url(job)).status_code == 200

    [run] = runs(job)
    assert run.outcome == JobRun.Outcome.SUCCESS
    assert run.duration is not None
    assert run.duration >= timedelta(0)
    assert state(job).status == JobMonitorState.Status.UP


def test_log_appends_to_the_open_run_and_changes_no_status(client, job):
    send(client, "POST", url(job, "/start"), b"starting")

    response = send(client, "POST", url(job, "/log"), b"halfway there")

    assert response.status_code == 200
    [run] = runs(job)
    assert run.outcome == ""
    assert run.excerpt.endswith("halfway there")
    assert state(job).status == JobMonitorState.Status.RUNNING


def test_a_post_needs_no_csrf_token_and_no_session(job):
    response = Client(enforce_csrf_checks=True).post(url(job), b"done", content_type="text/plain")

    assert response.status_code == 200
    assert runs(job)[0].excerpt == "done"


def test_the_json_content_type_of_healthchecks_clients_is_not_parsed(client, job):
    # healthchecks-io sends its log lines as the body under Content-Type: application/json.
    response = client.post(url(job), b"line one\nline two", content_type="application/json")

    assert response.status_code == 200
    assert runs(job)[0].excerpt == "line one\nline two"


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "BREW"])
def test_other_methods_are_refused_and_record_nothing(client, job, method):
    response = client.generic(method, url(job), b"x")

    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD, POST"
    assert response["Ping-Body-Limit"] == str(EXCERPT_LIMIT)
    assert "method not allowed" in text(response)
    assert runs(job) == []


# --- unknown monitors and ?create=1 --------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/ping/{key}/no-such-job",
        "/ping/no-such-key/{slug}",
        "/ping/no-such-key/{slug}/start",
        "/ping/{key}/no-such-job/3",
        "/ping/" + "k" * 65 + "/{slug}",
        "/ping/k%C3%A9y/{slug}",
    ],
)
def test_an_unknown_key_or_slug_is_not_found(client, job, path):
    response = client.get(path.format(key=job.ping_key.key, slug=job.slug))

    assert response.status_code == 404
    assert text(response).startswith("not found: no job monitor")
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response["Ping-Body-Limit"] == str(EXCERPT_LIMIT)
    assert JobRun.objects.count() == 0


@pytest.mark.parametrize(
    "path",
    [
        "/ping/",
        "/ping/{key}",
        "/ping/{key}/{slug}/",
        "/ping/{key}/{slug}/start/",
        "/ping/{key}/{slug}/finish",
        "/ping/{key}/{slug}/-1",
        "/ping/{key}/{slug}/" + "9" * 5000,
        "/ping/{key}/{slug}/0/extra",
    ],
)
def test_other_ping_urls_are_not_found_in_plain_text(client, job, path):
    response = client.post(path.format(key=job.ping_key.key, slug=job.slug))

    assert response.status_code == 404
    assert text(response) == "not found: no such ping URL"
    assert response["Ping-Body-Limit"] == str(EXCERPT_LIMIT)
    assert runs(job) == []


@pytest.mark.parametrize(
    "path",
    [
        "/ping/{key}/{slug}%00",
        "/ping/{key}%00/{slug}",
        "/ping/{key}/{slug}?rid=%00",
        "/ping/{key}/%ff%fe",
        "/ping/%ff/{slug}/start",
        "/ping/{key}/{slug}?create=1&create=%00",
        "/ping/" + "k" * 10_000 + "/{slug}",
    ],
)
def test_odd_urls_are_refused_never_with_a_500(client, job, path):
    response = client.get(path.format(key=job.ping_key.key, slug=job.slug))

    assert response.status_code in (400, 404)
    assert runs(job) == []


def test_create_makes_an_unknown_slug_under_the_keys_organisation(client, org, job):
    path = url(job).replace(job.slug, "nightly-etl") + "?create=1"
    response = client.post(path, b"first", content_type="text/plain")

    assert (response.status_code, text(response)) == (201, "Created")
    assert response["Ping-Body-Limit"] == str(EXCERPT_LIMIT)
    created = JobMonitor.objects.get(slug="nightly-etl")
    assert (created.organization, created.ping_key, created.name) == (
        org,
        job.ping_key,
        "nightly-etl",
    )
    # As Healthchecks makes them: every day, an hour's grace.
    assert (created.schedule_kind, created.period, created.grace) == (
        JobMonitor.Schedule.PERIOD,
        timedelta(days=1),
        timedelta(hours=1),
    )
    created.full_clean()  # a monitor the forms would have accepted
    assert [run.outcome for run in runs(created)] == [JobRun.Outcome.SUCCESS]
    assert state(created).status == JobMonitorState.Status.UP

    again = client.post(url(created) + "?create=1")

    assert (again.status_code, text(again)) == (200, "OK")
    assert JobMonitor.objects.filter(slug="nightly-etl").count() == 1


@pytest.mark.parametrize("create", ["0", "true", "yes", ""])
def test_create_must_be_1(client, job, create):
    response = client.get(url(job).replace(job.slug, "nightly-etl") + f"?create={create}")

    assert response.status_code == 404
    assert not JobMonitor.objects.filter(slug="nightly-etl").exists()


@pytest.mark.parametrize(
    "slug", ["Nightly", "-leading-dash", "has.dot", "spaced%20out", "é", "x" * 65, "x" * 5000]
)
def test_an_invalid_slug_is_refused_with_a_clear_message(client, job, slug):
    response = client.get(f"/ping/{job.ping_key.key}/{slug}?create=1")

    assert response.status_code == 400
    assert "invalid slug: use 1 to 64 lowercase letters" in text(response)
    assert JobMonitor.objects.count() == 1


def test_create_with_an_unknown_key_is_not_found(client, job):
    response = client.get("/ping/no-such-key/nightly-etl?create=1")

    assert response.status_code == 404
    assert JobMonitor.objects.count() == 1


def test_create_refuses_a_slug_the_organisation_uses_under_another_key(client, org, job):
    other = PingKey.objects.create(organization=org, name="other")

    response = client.get(f"/ping/{other.key}/{job.slug}?create=1")

    assert response.status_code == 409
    assert "reports under another ping key" in text(response)
    assert JobMonitor.objects.count() == 1
    assert runs(job) == []


def test_a_create_that_loses_a_race_pings_the_winners_monitor(job):
    # Another ping created the slug between this one's lookup and its insert.
    made = pings._create(job.ping_key.key, job.slug)

    assert made == (job, False)
    assert JobMonitor.objects.count() == 1


def test_a_key_opens_its_own_organisations_monitors_only(client, org, other_org, job):
    theirs = make_job(other_org, "payroll-export")

    response = client.get(f"/ping/{job.ping_key.key}/{theirs.slug}")

    assert response.status_code == 200
    assert (len(runs(job)), len(runs(theirs))) == (1, 0)


def test_creations_through_one_key_are_rate_limited(client, job, settings):
    settings.JOB_PING_CREATIONS_PER_MINUTE = 2
    base = f"/ping/{job.ping_key.key}"

    answers = [client.get(f"{base}/new-{n}?create=1").status_code for n in range(3)]

    assert answers == [201, 201, 429]
    assert not JobMonitor.objects.filter(slug="new-2").exists()
    # Pinging monitors that exist is not a creation.
    assert client.get(url(job)).status_code == 200


# --- run ids -------------------------------------------------------------------------------


def test_run_ids_pair_overlapping_runs_through_http(client, job):
    first, second = uuid.uuid4(), uuid.uuid4()
    client.get(url(job, "/start", f"rid={first}"))
    client.get(url(job, "/start", f"rid={second}"))

    response = client.get(url(job, "/0", f"rid={first}"))

    assert response.status_code == 200
    by_rid = {run.run_id: run for run in runs(job)}
    assert set(by_rid) == {first, second}
    assert by_rid[first].outcome == JobRun.Outcome.SUCCESS
    assert by_rid[first].duration is not None
    assert by_rid[second].outcome == ""
    assert state(job).status == JobMonitorState.Status.RUNNING


def test_the_same_rid_reported_twice_records_once(client, job):
    rid = str(uuid.uuid4()).upper()  # any case, as Healthchecks
    client.get(url(job, "/start", f"rid={rid}"))

    answers = [client.get(url(job, "/fail", f"rid={rid}")).status_code for _ in range(2)]

    assert answers == [200, 200]
    [run] = runs(job)
    assert (run.run_id, run.outcome) == (uuid.UUID(rid), JobRun.Outcome.FAILURE)


@pytest.mark.parametrize(
    "rid",
    [
        "",
        "not-a-uuid",
        "123e4567e89b12d3a456426614174000",
        "{123e4567-e89b-12d3-a456-426614174000}",
    ],
)
def test_an_invalid_rid_is_refused(client, job, rid):
    response = client.get(url(job, "/start", f"rid={rid}"))

    assert response.status_code == 400
    assert text(response).startswith("invalid uuid format")
    assert response["Ping-Body-Limit"] == str(EXCERPT_LIMIT)
    assert runs(job) == []


@pytest.mark.parametrize("status", [256, 1000, 99999999999999999999])
def test_an_exit_status_above_255_is_refused_as_healthchecks_does(client, job, status):
    response = client.get(url(job, f"/{status}"))

    assert response.status_code == 400
    assert text(response) == "invalid url format: an exit status is 0 to 255"
    assert runs(job) == []


# --- bodies --------------------------------------------------------------------------------


def test_a_body_over_the_limit_is_stored_truncated_and_the_run_recorded(client, job):
    body = b"early line\n" * 2000 + b"the last line says why"
    assert len(body) > EXCERPT_LIMIT

    response = send(client, "POST", url(job, "/fail"), body)

    assert response.status_code == 200
    [run] = runs(job)
    assert run.outcome == JobRun.Outcome.FAILURE
    assert run.excerpt_truncated is True
    assert len(run.excerpt) == EXCERPT_LIMIT
    assert run.excerpt.endswith("the last line says why")


def test_a_10_mb_log_is_stored_truncated_and_the_run_recorded(client, job):
    body = b"x" * (10 * 1024 * 1024) + "… and the end ✓".encode()

    response = send(client, "POST", url(job, "/0"), body)

    assert response.status_code == 200
    [run] = runs(job)
    assert run.outcome == JobRun.Outcome.SUCCESS
    assert run.excerpt_truncated is True
    # The last EXCERPT_LIMIT bytes, whole characters: fewer characters than bytes.
    assert len(run.excerpt.encode()) == EXCERPT_LIMIT
    assert run.excerpt == "x" * (EXCERPT_LIMIT - 19) + "… and the end ✓"


def test_a_body_at_the_limit_is_kept_whole(client, job):
    body = b"y" * EXCERPT_LIMIT

    send(client, "POST", url(job), body)

    [run] = runs(job)
    assert (run.excerpt, run.excerpt_truncated) == ("y" * EXCERPT_LIMIT, False)


@pytest.mark.parametrize(
    ("body", "stored"),
    [
        (b"nul\x00in the middle", "nul\ufffdin the middle"),
        (b"\xff\xfe latin-1 \xe9", "\ufffd\ufffd latin-1 \ufffd"),
        (b"\xed\xa0\x80 surrogate", "\ufffd\ufffd\ufffd surrogate"),
    ],
)
def test_odd_bytes_in_a_body_are_stored_replaced(client, job, body, stored):
    response = send(client, "POST", url(job), body)

    assert response.status_code == 200
    assert runs(job)[0].excerpt == stored


# --- traces --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def span_exporter() -> Iterator[InMemorySpanExporter]:
    # The provider is process-wide and its processors stay: the exporter is shut
    # down afterwards, so it keeps nothing of the tests that follow.
    exporter = InMemorySpanExporter()
    tracing.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()


def test_a_traceparent_joins_the_run_to_the_callers_trace(client, job, span_exporter):
    span_exporter.clear()

    response = client.get(url(job, "/start"), HTTP_TRACEPARENT=TRACEPARENT)

    assert response.status_code == 200
    [run] = runs(job)
    assert run.trace_id == CALLER_TRACE_ID
    spans = {span.name: span for span in span_exporter.get_finished_spans()}
    ping, request = spans[pings.SPAN_NAME], spans["http.request"]
    assert format(ping.context.span_id, "016x") == run.span_id
    assert ping.parent.span_id == request.context.span_id
    assert format(request.parent.span_id, "016x") == CALLER_SPAN_ID
    assert {format(s.context.trace_id, "032x") for s in (ping, request)} == {CALLER_TRACE_ID}


def test_a_finish_keeps_the_trace_its_start_joined(client, job):
    client.get(url(job, "/start"), HTTP_TRACEPARENT=TRACEPARENT)

    client.get(url(job))

    [run] = runs(job)
    assert (run.outcome, run.trace_id) == (JobRun.Outcome.SUCCESS, CALLER_TRACE_ID)


def test_without_a_traceparent_the_run_links_the_pings_own_trace(client, job):
    response = client.get(url(job))

    [run] = runs(job)
    assert len(run.trace_id) == 32
    assert run.trace_id == response["X-Trace-Id"] != CALLER_TRACE_ID


# --- the rate limit ------------------------------------------------------------------------


def test_a_flood_for_one_monitor_is_refused_without_slowing_another(
    client, org, job, settings, django_assert_num_queries
):
    settings.JOB_PINGS_PER_MINUTE = 3
    quiet = make_job(org, "equipment-sync")

    answers = [client.get(url(job)).status_code for _ in range(3)]
    with django_assert_num_queries(0):
        refused = client.post(url(job, "/fail"), b"x" * 100_000, content_type="text/plain")

    assert answers == [200, 200, 200]
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert text(refused).startswith("rate limited: more than 3 pings a minute for this monitor")
    assert refused["Ping-Body-Limit"] == str(EXCERPT_LIMIT)
    assert len(runs(job)) == 3  # the refused fail recorded nothing
    assert state(job).status == JobMonitorState.Status.UP
    assert client.get(url(quiet)).status_code == 200
    assert len(runs(quiet)) == 1


# --- cost ----------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", "/start", "/fail", "/log", "/3"])
def test_a_ping_costs_a_bounded_number_of_queries(
    client, job, suffix, django_assert_max_num_queries
):
    client.get(url(job, "/start"))

    # Measured: 9 on SQLite and PostgreSQL (the monitor, then record_ping's state read
    # and its transaction: savepoint, locked state, runs, CAS update, run, release).
    with django_assert_max_num_queries(10):
        response = client.get(url(job, suffix))

    assert response.status_code == 200
