"""manage.py run_demo_jobs: simulated payroll, equipment, ETL and backup jobs reporting
their runs to the demo server's ping endpoint through observability.jobs, until stopped,
so that /jobs/, the job alerts and the RPO objective show live data.

- Makes (once) the demo organisation's monitors, every period schedules short enough
  to watch: payroll-export, equipment-sync, etl-nightly and backup-db, under the ping
  key `demo`. A monitor that exists already is left as someone may have edited it.
- payroll-export, equipment-sync and etl-nightly are Python functions wrapped in
  ``job_run(..., slug=...)``, as a service's Celery task would be; backup-db is a
  command run through ``python -m observability.jobs run``, as a cron line would be.
- etl-nightly fails now and then (about one run in four, from a seeded generator: the
  same sequence at every start), which the built-in rule etl.job.failure pages for.

The simulated jobs stand for other services: their own job metrics are named as such a
service's would be (`demo_job_runs_total`, ...), in this process only, never in the
control plane's /metrics, which counts the runs it records from the pings.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from controlplane.catalog.models import Organization
from controlplane.jobs.models import BUSINESS_KINDS, JobMonitor, PingKey
from controlplane.jobs.runs import ensure_state
from observability.jobs import PING_URL_VARIABLE, job_run, note

PING_KEY_NAME = "demo"
RUNBOOK = "etl-job-failure"
METRICS_NAMESPACE = "demo"
SEED = 13
# How long the web server may take to answer before the first runs (they would only
# log that their pings were refused).
SERVER_WAIT_SECONDS = 60


@dataclass(frozen=True)
class DemoJob:
    slug: str
    name: str
    kind: str
    period: timedelta
    # The simulated work lasts between these many seconds.
    shortest: float
    longest: float
    failure_rate: float = 0.0
    # True: run as a command through `python -m observability.jobs run`.
    command_line: bool = False


JOBS = (
    DemoJob("payroll-export", "Payroll export", "payroll", timedelta(minutes=2), 2, 5),
    DemoJob("equipment-sync", "Equipment sync", "equipment", timedelta(minutes=1), 1, 3),
    DemoJob("etl-nightly", "ETL load (nightly, sped up)", "etl", timedelta(minutes=2), 3, 8, 0.25),
    DemoJob("backup-db", "Database backup", "backup", timedelta(minutes=2), 2, 4, 0, True),
)
GRACE = timedelta(minutes=1)
MAX_DURATION = timedelta(minutes=1)


@dataclass(frozen=True)
class Plan:
    """One run decided in advance, so the generator alone says what happens."""

    seconds: float
    fails: bool
    rows: int


def plan(job: DemoJob, rng: random.Random) -> Plan:
    """The next run of `job`: how long, whether it fails, how much it handles. Pure
    apart from `rng`."""
    return Plan(
        seconds=round(rng.uniform(job.shortest, job.longest), 1),
        fails=rng.random() < job.failure_rate,
        rows=rng.randint(50, 500),
    )


def schedule(jobs: tuple[DemoJob, ...], now: float, stagger: float = 7.0) -> dict[str, float]:
    """When each job first runs: a few seconds apart, so their runs do not pile up."""
    return {job.slug: now + 3 + index * stagger for index, job in enumerate(jobs)}


def next_run(due: float, period: timedelta, now: float) -> float:
    """The run after one due at `due`: a period later, or a period from now when the
    previous run made it late (never a burst of catch-up runs)."""
    following = due + period.total_seconds()
    return following if following > now else now + period.total_seconds()


class Command(BaseCommand):
    help = (
        "Run simulated payroll, equipment, ETL and backup jobs that report to the demo "
        "server's ping endpoint (observability.jobs), one of which fails now and then."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--org", default="demo", help="organisation slug (demo)")
        parser.add_argument(
            "--site-url", default="", help="the control plane's URL (default: SITE_URL)"
        )
        parser.add_argument("--seed", type=int, default=SEED, help="the generator's seed")
        parser.add_argument(
            "--once", action="store_true", help="run every job once, then stop (for checks)"
        )

    def handle(self, *args: Any, org: str, site_url: str, seed: int, once: bool, **options):
        organization = Organization.objects.filter(slug=org).first()
        if organization is None:
            raise CommandError(f"No organisation with the slug {org!r}: run seed_demo first.")
        site = (site_url or settings.SITE_URL).rstrip("/")
        monitors = ensure_monitors(organization)
        ensure_rpo(organization)
        for job in JOBS:
            monitor = monitors[job.slug]
            self.stdout.write(
                f"Demo job {job.slug} ({job.kind}, every {_minutes(job.period)}): "
                f"{_ping_base(site, monitor, shown=True)}/{job.slug}"
            )
        self._wait_for(site)
        # The simulated jobs are other services: their metrics are named as theirs.
        observability = settings.OBSERVABILITY
        settings.OBSERVABILITY = {**observability, "JOB_METRICS_NAMESPACE": METRICS_NAMESPACE}
        # Stopped by the demo (SIGTERM): a run in progress is reported as a shell
        # would see it, killed by SIGTERM (143), and a command running is stopped.
        stopping = signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(128 + number))
        try:
            self._loop(monitors, site, random.Random(seed), once)
        except KeyboardInterrupt:
            pass  # Ctrl-C stops the demo: the run in progress was reported as failed
        finally:
            signal.signal(signal.SIGTERM, stopping)
            settings.OBSERVABILITY = observability

    def _loop(
        self, monitors: dict[str, JobMonitor], site: str, rng: random.Random, once: bool
    ) -> None:
        if once:
            for job in JOBS:
                self._run(job, monitors[job.slug], site, plan(job, rng))
            return
        due = schedule(JOBS, time.time())
        while True:
            job = min(JOBS, key=lambda candidate: due[candidate.slug])
            time.sleep(max(0.0, due[job.slug] - time.time()))
            self._run(job, monitors[job.slug], site, plan(job, rng))
            due[job.slug] = next_run(due[job.slug], job.period, time.time())

    def _run(self, job: DemoJob, monitor: JobMonitor, site: str, decided: Plan) -> None:
        base = _ping_base(site, monitor)
        started = time.monotonic()
        try:
            if job.command_line:
                outcome = _backup(job, base, decided)
            else:
                outcome = _in_process(job, base, decided)
        except Exception as error:
            outcome = f"failure ({type(error).__name__}: {error})"
        self.stdout.write(
            f"demo job {job.slug}: {outcome} after {time.monotonic() - started:.1f} s"
        )

    def _wait_for(self, site: str) -> None:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + SERVER_WAIT_SECONDS
        while time.monotonic() < deadline:
            try:
                opener.open(f"{site}/healthz", timeout=2).close()
                return
            except OSError:
                time.sleep(1)
        self.stderr.write(f"{site} does not answer yet: the runs go on, their pings logged.")


@transaction.atomic
def ensure_monitors(organization: Organization) -> dict[str, JobMonitor]:
    """The demo's monitors, made when missing (with their state row); existing ones as
    they are."""
    key, _ = PingKey.objects.get_or_create(organization=organization, name=PING_KEY_NAME)
    runbook = _runbook(organization)
    monitors = {}
    for job in JOBS:
        monitor = (
            JobMonitor.objects.select_related("ping_key")
            .filter(organization=organization, slug=job.slug)
            .first()
        )
        if monitor is None:
            monitor = JobMonitor(
                organization=organization,
                slug=job.slug,
                name=job.name,
                kind=job.kind,
                schedule_kind=JobMonitor.Schedule.PERIOD,
                period=job.period,
                grace=GRACE,
                max_duration=MAX_DURATION,
                ping_key=key,
                runbook=runbook if job.kind in BUSINESS_KINDS else None,
            )
            monitor.full_clean()
            monitor.save()
        elif monitor.ping_key is None:
            monitor.ping_key = key
            monitor.save(update_fields=["ping_key", "updated_at"])
        ensure_state(monitor)
        monitors[job.slug] = monitor
    return monitors


def ensure_rpo(organization: Organization) -> None:
    """The platform's RPO (24 h) on the demo backups, so /slos/ shows the age of the last
    good backup live; a manager's edits of it stay."""
    from controlplane.catalog.actors import Actor
    from controlplane.slo import documents, editing
    from controlplane.slo.models import SLO

    if SLO.objects.filter(organization=organization, slug="backup-rpo").exists():
        return
    document = {
        "slug": "backup-rpo",
        "name": "Demo database backups: RPO 24 h",
        "description": "The last good backup of backup-db is younger than 24 hours.",
        "sli": {"kind": "rpo", "job": "backup-db", "target": "24h"},
        "objective": 99,
        "window": "7d",
    }
    editing.save(documents.apply(organization, document), Actor.system("run_demo_jobs"))


def _runbook(organization: Organization) -> Any:
    from runbooks.models import Runbook

    found = Runbook.objects.filter(slug=RUNBOOK, organization=organization).first()
    return found or Runbook.objects.filter(slug=RUNBOOK, organization__isnull=True).first()


def _ping_base(site: str, monitor: JobMonitor, shown: bool = False) -> str:
    key = monitor.ping_key.key
    return f"{site}/ping/{key[:4] + '…' if shown else key}"


def _minutes(period: timedelta) -> str:
    minutes = int(period.total_seconds() // 60)
    return "minute" if minutes == 1 else f"{minutes} minutes"


# --- the simulated jobs ------------------------------------------------------------------


def _in_process(job: DemoJob, base: str, decided: Plan) -> str:
    work = WORK[job.slug]
    try:
        job_run(f"demo.{job.slug}", slug=job.slug, ping_url=base)(work)(decided)
    except SimulatedFailure as error:
        return f"failure ({error})"
    return "success"


class SimulatedFailure(RuntimeError):
    pass


def _steps(decided: Plan, lines: list[str]) -> None:
    for line in lines:
        time.sleep(decided.seconds / len(lines))
        note(line)


def _payroll(decided: Plan) -> None:
    _steps(
        decided,
        [
            f"payroll: {decided.rows} payslips computed",
            f"payroll: bank transfer file written ({decided.rows} transfers)",
        ],
    )


def _equipment(decided: Plan) -> None:
    changed = decided.rows % 7
    _steps(decided, [f"equipment: {decided.rows // 10} devices polled, {changed} changed"])


def _etl(decided: Plan) -> None:
    _steps(
        decided,
        [f"etl: extracted {decided.rows * 100} rows from crm", "etl: transformed, 0 rejected"],
    )
    if decided.fails:
        raise SimulatedFailure("load: the warehouse refused batch 7 (connection reset)")
    note(f"etl: loaded {decided.rows * 100} rows")


WORK: dict[str, Callable[[Plan], None]] = {
    "payroll-export": _payroll,
    "equipment-sync": _equipment,
    "etl-nightly": _etl,
}

# The backup, a program of its own whose output the wrapper streams and keeps the tail of.
BACKUP_SCRIPT = """\
import sys, time
seconds, rows = float(sys.argv[1]), int(sys.argv[2])
print("pg_dump: dumping database demo", flush=True)
time.sleep(seconds)
print(f"backup: {rows * 3} MB written to /backups/demo.dump", flush=True)
"""


def _backup(job: DemoJob, base: str, decided: Plan) -> str:
    # As a cron line runs it: outside the control plane's settings and metrics.
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DJANGO_SETTINGS_MODULE", "PROMETHEUS_MULTIPROC_DIR"}
    }
    env |= {PING_URL_VARIABLE: base, "OTEL_SERVICE_NAME": f"demo-{job.slug}"}
    command = [sys.executable, "-m", "observability.jobs", "run", "--job", job.slug, "--"]
    command += [sys.executable, "-c", BACKUP_SCRIPT, str(decided.seconds), str(decided.rows)]
    process = subprocess.Popen(
        command,
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _, errors = process.communicate(timeout=MAX_DURATION.total_seconds())
    finally:
        if process.poll() is None:
            # Stopped while it ran: the wrapper forwards this and reports how it ended.
            process.terminate()
            process.wait(timeout=15)
    warnings = errors.decode(errors="replace").strip()
    status = process.returncode
    outcome = "success" if status == 0 else f"failure (exit status {status})"
    return f"{outcome}; {warnings}" if warnings else outcome
