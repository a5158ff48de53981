"""RPO and RTO objectives (controlplane/slo/objectives.py): the pure counting over run
and alert timestamps, the reading of those rows, their evaluation through the same
verdict and burn-rate alerts as any SLO, and where they show (API, board, page, history,
exports)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError

from controlplane.alerting.models import Alert, Severity
from controlplane.catalog.models import ApiToken, Role, Service
from controlplane.jobs.models import JobMonitor, JobRun
from controlplane.slo import documents, evaluation, objectives, openslo, rules
from controlplane.slo.maths import LONG
from controlplane.slo.models import SLO, SLOEvaluation, SLOSnapshot
from tests.factories import make_job, make_slo

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
NOW = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)
WINDOWS = (LONG, "5m", "30m", "1h", "2h", "6h", "1d", "3d")


def at(day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, 6, day, hour, minute, tzinfo=UTC)


# --- RPO, pure ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("after", "until", "length", "ends"),
    [
        # Epoch-aligned ends in (after, until]: an end on `after` is out, one on `until` in.
        (at(1, 10, 2), at(1, 10, 17), 5 * MINUTE, [at(1, 10, 5), at(1, 10, 10), at(1, 10, 15)]),
        (at(1, 10, 5), at(1, 10, 15), 5 * MINUTE, [at(1, 10, 10), at(1, 10, 15)]),
        (at(1, 10, 0), at(1, 10, 59), HOUR, []),
        (at(1, 9, 30), at(1, 12, 0), HOUR, [at(1, 10), at(1, 11), at(1, 12)]),
        (at(1, 12, 0), at(1, 11, 0), HOUR, []),
    ],
)
def test_slice_ends_are_the_epoch_aligned_multiples_of_the_slice_length(after, until, length, ends):
    assert objectives.slice_ends(after, until, length) == ends


@pytest.mark.parametrize(
    ("times", "kept"),
    [
        ([], []),
        # (10:00, 10:05] is one slice: only its last time decides anything.
        ([at(1, 10, 1), at(1, 10, 3), at(1, 10, 5)], [at(1, 10, 5)]),
        ([at(1, 10, 5), at(1, 10, 6)], [at(1, 10, 5), at(1, 10, 6)]),
        (
            [at(1, 10, 1), at(1, 10, 7), at(1, 10, 9), at(1, 11)],
            [at(1, 10, 1), at(1, 10, 9), at(1, 11)],
        ),
    ],
)
def test_last_per_slice_keeps_the_last_time_of_each_slice(times, kept):
    assert objectives.last_per_slice(times, 5 * MINUTE) == kept


@pytest.mark.parametrize(
    ("successes", "end", "good"),
    [
        ([], at(2, 2), False),  # no backup ever
        ([at(1, 2)], at(2, 1, 59), True),
        ([at(1, 2)], at(2, 2), False),  # exactly the RPO old: not younger than it
        ([at(1, 2), at(2, 2)], at(2, 2), True),  # a success at the slice's end counts
        ([at(2, 2, 1)], at(2, 2), False),  # finished after the slice ended
        ([at(2, 1), at(1, 2)], at(2, 3), True),  # order does not matter
    ],
)
def test_a_slice_is_good_when_its_last_success_is_younger_than_the_rpo(successes, end, good):
    assert objectives.good_slices([end], successes, DAY) == [good]


# Daily backups at 02:00 from 1 June to 7 June, then none: the gap starts to count at
# 8 June 02:00, when the last one is 24 h old.
DAILY_WITH_GAP = [at(day, 2) for day in range(1, 8)]


def test_rpo_slices_over_a_window_with_a_gap_in_backups():
    counts = objectives.rpo_counts(DAILY_WITH_GAP, NOW, NOW - 7 * DAY, HOUR, DAY)

    assert counts == {
        # Hourly ends from 3 June 13:00 to 10 June 12:00: good up to 8 June 01:00.
        LONG: (109.0, 168.0),
        "5m": (0.0, 1.0),
        "30m": (0.0, 1.0),
        "1h": (0.0, 1.0),
        "2h": (0.0, 2.0),
        "6h": (0.0, 6.0),
        "1d": (0.0, 24.0),
        # From 7 June 13:00: good until 8 June 01:00.
        "3d": (13.0, 72.0),
    }
    assert objectives.backup_age(DAILY_WITH_GAP, NOW) == 3 * DAY + 10 * HOUR


def test_rpo_slices_before_the_monitor_existed_are_not_counted():
    counts = objectives.rpo_counts(DAILY_WITH_GAP, NOW, NOW - 7 * DAY, HOUR, DAY, since=at(5))

    # Ends from 5 June 01:00 only; good up to 8 June 01:00.
    assert counts[LONG] == (73.0, 132.0)
    assert counts["3d"] == (13.0, 72.0)
    # A monitor made after `now` has nothing measured yet.
    later = objectives.rpo_counts(DAILY_WITH_GAP, NOW, NOW - 7 * DAY, HOUR, DAY, since=NOW + DAY)
    assert set(later.values()) == {(0.0, 0.0)}


def test_backup_age_ignores_successes_after_now_and_is_none_without_one():
    assert objectives.backup_age([at(10, 11), at(10, 13)], NOW) == HOUR
    assert objectives.backup_age([at(10, 13)], NOW) is None
    assert objectives.backup_age([], NOW) is None


# --- RTO, pure ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("run", "restore"),
    [
        ((at(9, 1), at(9, 3), 2 * HOUR, "success"), objectives.Restore(at(9, 3), 2 * HOUR)),
        # No duration recorded: finished - started.
        ((at(9, 1), at(9, 6), None, "success"), objectives.Restore(at(9, 6), 5 * HOUR)),
        # Past the monitor's own maximum (timeout): still a restore, of its duration.
        ((at(9, 1), at(9, 7), 6 * HOUR, "timeout"), objectives.Restore(at(9, 7), 6 * HOUR)),
        # A failed drill restored nothing: a bad restore whatever it took.
        (
            (at(9, 1), at(9, 2), HOUR, "failure"),
            objectives.Restore(at(9, 2), HOUR, failed=True),
        ),
        # A lone success ping: no restore time to judge.
        ((None, at(9, 6), None, "success"), None),
        ((at(9, 1), None, None, "success"), None),
    ],
)
def test_a_drill_run_is_a_restore_of_its_duration_counted_when_it_finished(run, restore):
    assert objectives.drill_restores([run]) == ([restore] if restore else [])


@pytest.mark.parametrize(
    ("incident", "restore"),
    [
        # Resolved: resolved - started, counted at the resolution.
        ((at(10, 1), at(10, 3)), objectives.Restore(at(10, 3), 2 * HOUR)),
        # Open for 3 h, under the 4 h RTO: not counted yet.
        ((at(10, 9), None), None),
        # Open for exactly the RTO: not yet beyond it.
        ((at(10, 8), None), None),
        # Open for 5 h: a bad restore now, of 5 h so far.
        ((at(10, 7), None), objectives.Restore(NOW, 5 * HOUR)),
        # Resolved after `now` (evaluating the past): open at `now`.
        ((at(10, 7), at(10, 13)), objectives.Restore(NOW, 5 * HOUR)),
        # Not started at `now`.
        ((at(10, 13), None), None),
    ],
)
def test_an_incident_is_a_restore_once_resolved_or_once_open_beyond_the_rto(incident, restore):
    found = objectives.incident_restores([incident], NOW, 4 * HOUR)

    assert found == ([restore] if restore else [])


def test_rto_counts_restores_within_the_rto_per_window_and_the_longest():
    restores = [
        objectives.Restore(NOW - 20 * DAY, 6 * HOUR),  # bad, in the 30-day window only
        objectives.Restore(NOW - 2 * DAY, 4 * HOUR),  # exactly the RTO: good
        objectives.Restore(NOW - 3 * HOUR, 90 * MINUTE),
        objectives.Restore(NOW, 5 * HOUR),  # an incident open beyond the RTO
        objectives.Restore(NOW - 40 * DAY, 9 * HOUR),  # before the window
    ]

    counts = objectives.rto_counts(restores, NOW, NOW - 30 * DAY, 4 * HOUR)

    assert counts == {
        LONG: (2.0, 4.0),
        "5m": (0.0, 1.0),
        "30m": (0.0, 1.0),
        "1h": (0.0, 1.0),
        "2h": (0.0, 1.0),
        "6h": (1.0, 2.0),
        "1d": (1.0, 2.0),
        "3d": (2.0, 3.0),
    }
    assert objectives.longest_restore(restores, NOW, NOW - 30 * DAY) == 6 * HOUR
    assert objectives.longest_restore(restores, NOW, NOW - DAY) == 5 * HOUR
    assert objectives.longest_restore([], NOW, NOW - DAY) is None


# --- the rows -------------------------------------------------------------------------------


def backup_monitor(org, slug="nightly-backup", created: datetime | None = None, **fields):
    """A backup monitor made on 1 June (runs before it are ignored by the RPO)."""
    monitor = make_job(org, slug, kind="backup", **fields)
    JobMonitor.objects.filter(pk=monitor.pk).update(created_at=created or at(1))
    monitor.refresh_from_db()
    return monitor


def succeeded(monitor: JobMonitor, *finished: datetime, took: timedelta = 10 * MINUTE) -> None:
    JobRun.objects.bulk_create(
        JobRun(
            monitor=monitor,
            started_at=end - took,
            finished_at=end,
            duration=took,
            outcome=JobRun.Outcome.SUCCESS,
            exit_code=0,
        )
        for end in finished
    )


def objective(org, slug: str, kind: str, **fields) -> SLO:
    """An RPO or RTO SLO as the admin saves it (checked), with its evaluation row."""
    values = {
        "name": slug.replace("-", " ").capitalize(),
        "objective": 99.0,
        "window": "7d",
        "budgeting": "timeslices" if kind == "rpo" else "occurrences",
        **fields,
    }
    slo = SLO(organization=org, slug=slug, kind=kind, **values)
    slo.full_clean()
    slo.save()
    SLOEvaluation.objects.create(slo=slo)
    return SLO.objects.select_related("organization", "service", "evaluation").get(pk=slo.pk)


def incident(org, service, started, resolved=None, **fields) -> Alert:
    return Alert.objects.create(
        organization=org,
        rule_key="api.5xx",
        service=service,
        fingerprint=f"fp-{started.isoformat()}-{fields.get('severity', '')}-{service.slug}",
        severity=fields.pop("severity", Severity.CRITICAL),
        state=Alert.State.RESOLVED if resolved else Alert.State.FIRING,
        started_at=started,
        resolved_at=resolved,
        **fields,
    )


def evaluate(slo: SLO, now: datetime):
    slo = SLO.objects.select_related("organization", "service", "evaluation").get(pk=slo.pk)
    [outcome] = evaluation.evaluate([slo], now)
    return outcome, SLOEvaluation.objects.get(slo=slo)


@pytest.mark.django_db
def test_an_rpo_is_measured_from_the_backup_runs_with_a_gap(org):
    monitor = backup_monitor(org)
    succeeded(monitor, *DAILY_WITH_GAP)
    # A failed run and another monitor's success change nothing.
    JobRun.objects.create(
        monitor=monitor, started_at=at(9, 2), finished_at=at(9, 2, 5), outcome="failure"
    )
    succeeded(backup_monitor(org, "other-backup"), at(10, 11))
    slo = objective(org, "rpo", "rpo", job=monitor, slice_length=HOUR)

    outcome, row = evaluate(slo, NOW)

    assert outcome.result == "ok"
    assert (row.events, row.sli) == (168.0, 109 / 168)
    assert row.status == "exhausted"  # 59 bad hours of a budget of 1.68
    assert (row.current_value, row.current_unit) == ((3 * DAY + 10 * HOUR).total_seconds(), "s")
    snapshot = SLOSnapshot.objects.get(slo=slo)
    assert (snapshot.current_value, snapshot.events) == (row.current_value, 168.0)


@pytest.mark.django_db
def test_an_rto_is_measured_from_drill_runs_and_critical_incidents(org, service):
    other = Service.objects.create(organization=org, slug="web", name="Web", team="web")
    drill = make_job(org, "restore-drill", kind="restore")
    succeeded(drill, at(8, 3), took=3 * HOUR)  # good
    succeeded(drill, at(9, 3), took=5 * HOUR)  # bad, the longest
    JobRun.objects.create(  # a failed drill restored nothing: a bad restore
        monitor=drill, started_at=at(9, 5), finished_at=at(9, 6), outcome="failure"
    )
    incident(org, service, at(7, 1), at(7, 2))  # 1 h: good
    incident(org, service, at(10, 7))  # open 5 h at NOW: bad
    incident(org, service, at(10, 10))  # open 2 h: not counted yet
    # Not incidents of this RTO: a warning, a test alert, another service's.
    incident(org, service, at(6, 1), at(6, 20), severity=Severity.WARNING)
    incident(org, service, at(6, 1), at(6, 21), is_test=True)
    incident(org, other, at(6, 1), at(6, 22))
    slo = objective(org, "rto", "rto", job=drill, incident_services=["checkout"])

    outcome, row = evaluate(slo, NOW)

    assert outcome.result == "ok"
    assert (row.events, row.sli) == (5.0, 0.4)
    assert row.current_value == (5 * HOUR).total_seconds()
    assert row.burn_rates["5m"] == pytest.approx(100.0)  # the open incident: 1 bad of 1

    # Its own burn-rate page (critical, of the same service) is no incident of it.
    Alert.objects.create(
        organization=org,
        rule_key="slo.burn_rate",
        slo=slo,
        service=service,
        fingerprint="slo-page",
        severity=Severity.CRITICAL,
        started_at=at(9),
    )
    assert evaluate(slo, NOW)[1].events == 5.0


@pytest.mark.django_db
def test_a_burn_rate_page_opens_when_backups_stop_and_resolves_when_one_succeeds(org, service):
    monitor = backup_monitor(org, service=service)
    succeeded(monitor, *(at(day, 2) for day in range(1, 10)))  # the last at 9 June 02:00
    slo = objective(org, "backups", "rpo", job=monitor, service=service)

    outcome, row = evaluate(slo, at(10, 1, 55))  # 23 h 55 min old
    assert (row.status, outcome.opened) == ("ok", 0)
    assert not Alert.objects.filter(slo=slo).exists()

    # 24 h old: the slice ending now is the first bad one, 1 of the hour's 12, above
    # the fast tier's 3.36% (99% over 7 days); 1 of 6 hours' 72 is not above 1.4%.
    outcome, row = evaluate(slo, at(10, 2))
    assert (row.status, outcome.opened) == ("breaching", 1)
    fast = Alert.objects.get(slo=slo)
    assert fast.labels["burn_tier"] == "fast"
    assert (fast.severity, fast.service, fast.rule_key) == ("critical", service, "slo.burn_rate")
    assert fast.runbook_url == "/runbooks/slo-objectives/"
    assert row.current_value == DAY.total_seconds()

    # 24 h 20 min old: five bad slices, and the medium tier pages too.
    outcome, row = evaluate(slo, at(10, 2, 20))
    assert outcome.opened == 1
    pages = Alert.objects.filter(slo=slo, state=Alert.State.FIRING)
    assert sorted(a.labels["burn_tier"] for a in pages) == ["fast", "medium"]

    # A backup succeeds at 02:30: by 02:40 the 5-minute window is good again.
    succeeded(monitor, at(10, 2, 30))
    outcome, row = evaluate(slo, at(10, 2, 40))
    fast.refresh_from_db()
    assert fast.state == Alert.State.RESOLVED
    assert row.current_value == (10 * MINUTE).total_seconds()


@pytest.mark.django_db
def test_an_objective_whose_monitor_was_deleted_has_no_data_and_keeps_its_alerts(org):
    monitor = backup_monitor(org)
    slo = objective(org, "rpo", "rpo", job=monitor)
    monitor.delete()

    outcome, row = evaluate(slo, NOW)

    assert (outcome.result, row.status) == ("source_error", "no_data")
    assert "backup monitor was deleted" in row.last_error


# --- what an RPO or RTO must hold ---------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kind", "changes", "field"),
    [
        ("rpo", {"job": None}, "job"),
        ("rpo", {"budgeting": "occurrences"}, "budgeting"),
        ("rpo", {"incident_services": ["checkout"]}, "incident_services"),
        ("rpo", {"recovery_target": timedelta(0)}, "recovery_target"),
        ("rpo", {"slice_target": 0.9}, "slice_target"),
        ("rto", {"job": None, "incident_services": []}, "job"),
        ("rto", {"budgeting": "timeslices"}, "budgeting"),
        ("rto", {"incident_services": ["nope"]}, "incident_services"),
        ("rto", {"incident_services": "checkout"}, "incident_services"),
        ("rto", {"job": "backup"}, "job"),  # a drill must be a restore monitor
        ("rto", {"source": "prom"}, "source"),
        ("rpo", {"job": "foreign"}, "job"),
    ],
)
def test_an_objective_is_refused_naming_the_field(org, other_org, service, kind, changes, field):
    from tests.factories import make_source

    monitors = {
        "backup": backup_monitor(org),
        "restore": make_job(org, "restore-drill", kind="restore"),
        "foreign": make_job(other_org, "their-backup", kind="backup"),
    }
    values = {
        "job": monitors["backup" if kind == "rpo" else "restore"],
        "incident_services": ["checkout"] if kind == "rto" else [],
        "budgeting": "timeslices" if kind == "rpo" else "occurrences",
        **changes,
    }
    if isinstance(values["job"], str):
        values["job"] = monitors[values["job"]]
    if values.get("source") == "prom":
        values["source"] = make_source(org, "http://prometheus.example:9090")
    slo = SLO(organization=org, slug="x", name="x", kind=kind, objective=99, **values)

    with pytest.raises(ValidationError) as refused:
        slo.full_clean()

    assert field in refused.value.message_dict, refused.value.message_dict


# --- documents, API, pages, exports ---------------------------------------------------------------


@pytest.mark.django_db
def test_documents_of_objectives_apply_and_read_back(org, service):
    backup_monitor(org)
    make_job(org, "restore-drill", kind="restore")

    rpo = documents.apply(
        org,
        {"slug": "rpo", "name": "RPO", "objective": 99,
         "sli": {"kind": "rpo", "job": "nightly-backup"}},
    )  # fmt: skip
    rto = documents.apply(
        org,
        {"slug": "rto", "name": "RTO", "objective": 95, "sli": {
            "kind": "rto", "job": "restore-drill", "services": ["checkout"], "target": "2h"}},
    )  # fmt: skip

    # Budgeting follows the kind when the document leaves it out; the defaults show.
    assert (rpo.budgeting, rpo.source_id) == ("timeslices", None)
    assert rto.budgeting == "occurrences"
    rpo.save()
    rto.save()
    assert documents.to_document(rpo)["sli"] == {
        "kind": "rpo",
        "job": "nightly-backup",
        "target": "1d",
    }
    assert documents.to_document(rto)["sli"] == {
        "kind": "rto",
        "job": "restore-drill",
        "services": ["checkout"],
        "target": "2h",
    }
    # A document read back applies to the same SLO.
    again = documents.apply(org, documents.to_document(rto), current=rto)
    assert documents.same(again, rto)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("sli", "field", "words"),
    [
        ({"kind": "rpo", "job": "nope"}, "sli", "Unknown job monitor 'nope'"),
        ({"kind": "rpo", "job": "nightly-backup", "total": "x"}, "sli", "has no total"),
        ({"kind": "rpo", "job": "nightly-backup", "target": "soon"}, "sli", "target"),
        ({"kind": "rpo"}, "sli.job", "backup monitor"),
        ({"kind": "rto", "services": []}, "sli.job", "restore-drill monitor"),
        ({"kind": "rto", "services": ["nope"]}, "sli.services", "Unknown services: nope"),
    ],
)
def test_a_refused_objective_document_names_the_field(org, sli, field, words):
    backup_monitor(org)

    with pytest.raises(ValidationError) as refused:
        documents.apply(org, {"slug": "o", "name": "O", "objective": 99, "sli": sli})

    errors = refused.value.message_dict
    assert any(words in message for message in errors.get(field, [])), errors


@pytest.mark.django_db
def test_the_api_writes_an_rpo_without_a_source_and_shows_its_current_value(org, api):
    monitor = backup_monitor(org)
    succeeded(monitor, at(10, 9))
    writer = api(ApiToken.issue(org, ApiToken.Scope.WRITE)[1])

    created = writer.post(
        "/api/v1/slos/",
        {"slug": "rpo", "name": "RPO", "objective": 99, "window": "7d",
         "sli": {"kind": "rpo", "job": "nightly-backup", "target": "24h"}},
        format="json",
    )  # fmt: skip
    assert created.status_code == 201, created.content
    assert (created.json()["source"], created.json()["current_value"]) == (None, None)
    # A ratio SLI still needs its source.
    refused = writer.post(
        "/api/v1/slos/",
        {"slug": "r", "name": "R", "objective": 99, "sli": {"kind": "ratio", "total": "x"}},
        format="json",
    )
    assert refused.status_code == 400
    assert "source" in refused.json()["errors"]

    evaluate(SLO.objects.get(slug="rpo"), NOW)
    shown = writer.get("/api/v1/slos/rpo/").json()
    assert (shown["current_value"], shown["current_unit"]) == (3 * 3600.0, "s")
    listed = {item["slug"]: item for item in writer.get("/api/v1/slos/").json()["results"]}
    assert listed["rpo"]["current_value"] == 3 * 3600.0
    since = (NOW - HOUR).isoformat()
    history = writer.get(f"/api/v1/slos/rpo/history/?since={since}&until={NOW.isoformat()}")
    assert [s["current_value"] for s in history.json()["snapshots"]] == [3 * 3600.0]


@pytest.mark.django_db
def test_the_board_and_the_page_show_the_current_value_and_the_objectives_runbook(
    client, member, org
):
    monitor = backup_monitor(org)
    succeeded(monitor, at(10, 9))
    slo = objective(org, "rpo", "rpo", job=monitor)
    make_slo(org, "api", evaluation={"status": "ok"})
    evaluate(slo, NOW)
    client.force_login(member(org, Role.VIEWER))

    board = client.get("/slos/").content.decode()
    page = client.get("/slos/rpo/").content.decode()

    assert "last good backup 3 h ago" in board
    assert board.count('class="muted slo-current"') == 1  # the ratio SLO has none
    assert "last good backup 3 h ago" in page
    assert "nightly-backup" in page
    assert "/runbooks/slo-objectives/" in page


@pytest.mark.django_db
def test_exports_leave_objectives_out_with_a_note(org):
    monitor = backup_monitor(org)
    rpo = objective(org, "nightly-rpo", "rpo", job=monitor)
    ratio = SLO.objects.get(pk=make_slo(org, "api-availability").pk)  # as the commands read it
    pairs = [("acme", rpo.definition()), ("acme", ratio.definition())]

    groups = rules.rule_groups(pairs, NOW)
    written = openslo.write([documents.to_document(rpo), documents.to_document(ratio)], "acme")

    assert "api-availability" in str(groups)
    assert "nightly-rpo" not in str(groups)
    assert any("acme/nightly-rpo: left out" in line for line in rules.notes(pairs, NOW))
    assert rules.rule_tests(pairs, "slo-rules.yml", NOW)["tests"]  # the ratio SLO's alone
    assert "name: api-availability" in written
    assert "name: nightly-rpo" not in written
    assert "SLO nightly-rpo skipped" in written


@pytest.mark.django_db
def test_the_admin_saves_an_rpo_clearing_what_other_kinds_use(client, member, org):
    monitor = backup_monitor(org)
    client.force_login(member(org, Role.MANAGER))
    data = {
        "organization": org.pk,
        "slug": "rpo",
        "name": "RPO",
        "enabled": "on",
        "kind": "rpo",
        # Left over from the ratio kind the form started with: cleared, not refused.
        "bad": 'http_requests_total{code=~"5.."}',
        "total": "http_requests_total",
        "job": monitor.pk,
        "incident_services": "[]",
        "recovery_target": "12h",
        "objective": "99",
        "window": "7d",
        "time_zone": "UTC",
        "budgeting": "timeslices",
        "slice_length": "5m",
        "min_events": "0",
        "page": "on",
        "ticket": "on",
        "labels": "{}",
    }

    response = client.post("/admin/slo/slo/add/", data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    slo = SLO.objects.get(slug="rpo")
    assert (slo.kind, slo.job, slo.recovery_target) == ("rpo", monitor, 12 * HOUR)
    assert (slo.source, slo.bad, slo.total) == (None, "", "")
    assert SLOEvaluation.objects.filter(slo=slo).exists()
