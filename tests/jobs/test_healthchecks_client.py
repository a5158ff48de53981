"""Real Healthchecks clients against a live control plane: the `healthchecks-io`
package from PyPI (httpx underneath) and the curl lines Healthchecks documents, each
given the control plane's ping URL as its base, as a team moving a cron job would."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import uuid
import warnings
from collections.abc import Iterator

import pytest
from django.core.cache import cache

from controlplane.jobs.models import EXCERPT_LIMIT, JobMonitor, JobMonitorState, JobRun
from tests.factories import make_job

with warnings.catch_warnings():
    # Its schemas use pydantic 1 idioms (warned about at import); its ping calls do not.
    warnings.simplefilter("ignore", DeprecationWarning)
    from healthchecks_io import (
        AsyncClient,
        BadAPIRequestError,
        CheckNotFoundError,
        CheckTrap,
        Client,
        HCAPIRateLimitError,
    )

CALLER_TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{CALLER_TRACE_ID}-b7ad6b7169203331-01"


@pytest.fixture(autouse=True)
def _fresh_counters() -> Iterator[None]:
    # The live server runs in this process: the rate limit counts in this cache.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def job(org, live_server) -> JobMonitor:
    return make_job(org, "payroll-export")


@pytest.fixture
def ping_base(live_server) -> str:
    return f"{live_server.url}/ping/"


@pytest.fixture
def hc(job, ping_base) -> Iterator[Client]:
    with Client(ping_key=job.ping_key.key, ping_url=ping_base) as client:
        yield client


def runs(monitor: JobMonitor) -> list[JobRun]:
    return list(JobRun.objects.filter(monitor=monitor).order_by("created_at", "pk"))


def status(monitor: JobMonitor) -> str:
    return JobMonitorState.objects.get(pk=monitor.pk).status


# --- healthchecks-io ------------------------------------------------------------------------


def test_start_and_success_through_the_client(hc, job):
    assert hc.start_ping(slug=job.slug) == (True, "OK")
    assert status(job) == JobMonitorState.Status.RUNNING

    assert hc.success_ping(slug=job.slug, data="exported 120 payslips") == (True, "OK")

    [run] = runs(job)
    assert (run.outcome, run.excerpt) == (JobRun.Outcome.SUCCESS, "exported 120 payslips")
    assert run.started_at is not None
    assert run.duration is not None
    assert status(job) == JobMonitorState.Status.UP


def test_fail_through_the_client(hc, job):
    assert hc.fail_ping(slug=job.slug, data="bank API refused the file") == (True, "OK")

    [run] = runs(job)
    assert (run.outcome, run.excerpt) == (JobRun.Outcome.FAILURE, "bank API refused the file")
    assert status(job) == JobMonitorState.Status.FAILED


@pytest.mark.parametrize(
    ("code", "outcome"), [(0, JobRun.Outcome.SUCCESS), (3, JobRun.Outcome.FAILURE)]
)
def test_exit_codes_through_the_client(hc, job, code, outcome):
    hc.start_ping(slug=job.slug)

    assert hc.exit_code_ping(code, slug=job.slug) == (True, "OK")

    [run] = runs(job)
    assert (run.outcome, run.exit_code) == (outcome, code)


def test_the_clients_check_trap_reports_a_block_and_its_exception(hc, job):
    def job_body(fails: bool) -> None:
        with CheckTrap(hc, slug=job.slug) as trap:
            trap.add_log("step 1 done")
            if fails:
                raise RuntimeError("disk full")

    job_body(fails=False)
    with pytest.raises(RuntimeError):
        job_body(fails=True)

    first, second = runs(job)
    assert (first.outcome, first.excerpt) == (JobRun.Outcome.SUCCESS, "step 1 done")
    assert second.outcome == JobRun.Outcome.FAILURE
    assert "disk full" in second.excerpt


def test_the_clients_errors_for_what_we_refuse(hc, job, settings):
    with pytest.raises(CheckNotFoundError):
        hc.success_ping(slug="no-such-job")
    with pytest.raises(BadAPIRequestError):
        hc.exit_code_ping(256, slug=job.slug)
    settings.JOB_PINGS_PER_MINUTE = 2
    hc.success_ping(slug=job.slug)
    hc.success_ping(slug=job.slug)
    with pytest.raises(HCAPIRateLimitError):
        hc.success_ping(slug=job.slug)

    assert len(runs(job)) == 2


def test_the_async_client(job, ping_base):
    async def report() -> list[tuple[bool, str]]:
        # Closed inside the loop: the client's own finalizer would close it after.
        async with AsyncClient(ping_key=job.ping_key.key, ping_url=ping_base) as client:
            return [
                await client.start_ping(slug=job.slug),
                await client.exit_code_ping(0, slug=job.slug, data="done"),
            ]

    assert asyncio.run(report()) == [(True, "OK"), (True, "OK")]
    [run] = runs(job)
    assert (run.outcome, run.excerpt) == (JobRun.Outcome.SUCCESS, "done")


# --- curl, as Healthchecks documents it -----------------------------------------------------

needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["curl", "-fsS", "-m", "10", "--retry", "5", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@needs_curl
def test_the_documented_curl_lines(job, ping_base):
    url = f"{ping_base}{job.ping_key.key}/{job.slug}"

    started = curl("-o", "/dev/null", f"{url}/start")
    finished = curl("--data-raw", "exported 120 payslips", url)

    assert (started.returncode, started.stderr) == (0, "")
    assert (finished.returncode, finished.stdout) == (0, "OK")
    [run] = runs(job)
    assert (run.outcome, run.excerpt) == (JobRun.Outcome.SUCCESS, "exported 120 payslips")


@needs_curl
def test_curl_reports_a_cron_lines_exit_status_with_a_run_id(job, ping_base):
    rid = uuid.uuid4()
    url = f"{ping_base}{job.ping_key.key}/{job.slug}"

    curl("-o", "/dev/null", f"{url}/start?rid={rid}")
    # What `cmd; curl ... $URL/$?` sends when cmd exits with 2.
    result = curl("-o", "/dev/null", f"{url}/2?rid={rid}")

    assert result.returncode == 0
    [run] = runs(job)
    assert (run.run_id, run.outcome, run.exit_code) == (rid, JobRun.Outcome.FAILURE, 2)


@needs_curl
def test_curl_with_a_traceparent_joins_the_callers_trace(job, ping_base):
    url = f"{ping_base}{job.ping_key.key}/{job.slug}"

    result = curl("-o", "/dev/null", "-H", f"traceparent: {TRACEPARENT}", f"{url}/start")

    assert result.returncode == 0
    assert runs(job)[0].trace_id == CALLER_TRACE_ID


@needs_curl
def test_curl_sends_a_10_mb_log_and_the_run_is_recorded(job, ping_base, tmp_path):
    log = tmp_path / "job.log"
    log.write_bytes(b"noise\n" * (10 * 1024 * 1024 // 6) + b"FAILED: disk full\n")
    url = f"{ping_base}{job.ping_key.key}/{job.slug}/1"

    result = curl("--data-binary", f"@{log}", "-D", "-", url)

    assert result.returncode == 0, result.stderr
    assert f"ping-body-limit: {EXCERPT_LIMIT}" in result.stdout.lower()
    [run] = runs(job)
    assert (run.outcome, run.exit_code, run.excerpt_truncated) == (
        JobRun.Outcome.FAILURE,
        1,
        True,
    )
    assert run.excerpt.endswith("FAILED: disk full\n")
    assert len(run.excerpt) == EXCERPT_LIMIT


@needs_curl
def test_curl_fails_on_an_unknown_slug_and_says_why(job, ping_base):
    result = subprocess.run(
        ["curl", "-sS", "-m", "10", f"{ping_base}{job.ping_key.key}/no-such-job"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.stdout == "not found: no job monitor 'no-such-job' under this ping key"
    assert runs(job) == []
