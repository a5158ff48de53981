"""manage.py import_openslo and export_openslo: all or nothing, idempotent, and a round
trip from one organisation to another."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError

from controlplane.catalog.actors import Actor
from controlplane.catalog.models import Organization, Service
from controlplane.slo import documents, editing
from controlplane.slo.models import SLO
from tests.factories import make_runbook, make_source
from tests.promql.fake import vector

AVAILABILITY = """\
apiVersion: openslo/v1
kind: SLO
metadata:
  name: api-availability
  displayName: API availability
  labels: {team: payments}
spec:
  service: api
  indicator:
    metadata: {name: api-good-ratio}
    spec:
      ratioMetric:
        counter: true
        good:
          metricSource:
            type: Prometheus
            spec: {query: 'sum(rate(http_requests_total{code!~"5.."}[5m]))'}
        total:
          metricSource:
            type: Prometheus
            spec: {query: 'sum(rate(http_requests_total[5m]))'}
  timeWindow: [{duration: 28d, isRolling: true}]
  budgetingMethod: Occurrences
  objectives: [{displayName: availability, target: 0.999}]
  alertPolicies: [page-on-burn]
"""

BACKUPS = """\
apiVersion: openslo/v1
kind: SLI
metadata: {name: backup-age}
spec:
  thresholdMetric:
    metricSource: {type: Prometheus, spec: {query: time() - backup_last_success_timestamp_seconds}}
---
apiVersion: openslo/v1
kind: SLO
metadata: {name: backup-rpo, displayName: Backups younger than 24 h}
spec:
  service: api
  indicatorRef: backup-age
  timeWindow: [{duration: 1M, calendar: {timeZone: Europe/Paris}}]
  budgetingMethod: Timeslices
  objectives: [{op: lt, value: 86400, targetPercent: 99, timeSliceWindow: 10m}]
"""


def slo_text(slug: str, target: str = "0.999", query: str = "http_requests_total") -> str:
    return (
        AVAILABILITY.replace("api-availability", slug)
        .replace("target: 0.999", f"target: {target}")
        .replace("sum(rate(http_requests_total[5m]))", query)
    )


@pytest.fixture
def prom(org, fake):
    """The organisation's one source: a Prometheus stand-in that finds every query valid."""
    Service.objects.create(organization=org, slug="api", name="API")
    return make_source(org, fake.url)


def files(tmp_path: Path, **texts: str) -> list[str]:
    paths = []
    for name, text in texts.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(text, encoding="utf-8")
        paths.append(str(path))
    return paths


def run(command: str, *args: str) -> str:
    out = io.StringIO()
    call_command(command, *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_import_creates_the_slos_and_lists_what_it_ignored(prom, org, tmp_path):
    paths = files(tmp_path, availability=AVAILABILITY, backups=BACKUPS)

    output = run("import_openslo", *paths, "--org", "acme")

    assert output.splitlines()[:3] == [
        "created: api-availability, backup-rpo",
        "updated: none",
        "unchanged: none",
    ]
    where = f"note: {paths[0]}, document 1 (SLO api-availability)"
    assert f"{where}, spec.alertPolicies: ignored: burn-rate alerts" in output
    assert f"{where}, spec.objectives[0].displayName: ignored" in output
    availability = SLO.objects.get(organization=org, slug="api-availability")
    assert documents.to_document(availability) == {
        "slug": "api-availability",
        "name": "API availability",
        "description": "",
        "service": "api",
        "source": "prom",
        "sli": {
            "kind": "ratio",
            "good": 'http_requests_total{code!~"5.."}',
            "total": "http_requests_total",
        },
        "objective": 99.9,
        "window": "28d",
        "time_zone": "UTC",
        "budgeting": "occurrences",
        "slice_length": "5m",
        "slice_target": None,
        "min_events": 0,
        "page": True,
        "ticket": True,
        "escalation_policy": None,
        "runbook": None,
        "labels": {"team": "payments"},
        "enabled": True,
    }
    backups = SLO.objects.get(organization=org, slug="backup-rpo")
    assert (backups.kind, backups.op, backups.threshold) == ("threshold", "<", 86400)
    assert (backups.window, backups.time_zone, backups.budgeting) == (
        "month",
        "Europe/Paris",
        "timeslices",
    )
    assert backups.slice_length.total_seconds() == 600
    # Saved through the one recorder: each has its evaluation row, due.
    assert backups.evaluation.status == "pending"


def test_importing_the_same_file_twice_changes_nothing(prom, org, tmp_path):
    paths = files(tmp_path, availability=AVAILABILITY, backups=BACKUPS)
    run("import_openslo", *paths, "--org", "acme")
    before = dict(SLO.objects.values_list("slug", "updated_at"))

    output = run("import_openslo", *paths, "--org", "acme")

    assert output.splitlines()[:3] == [
        "created: none",
        "updated: none",
        "unchanged: api-availability, backup-rpo",
    ]
    assert dict(SLO.objects.values_list("slug", "updated_at")) == before


def test_an_update_replaces_what_the_file_says_and_keeps_what_it_cannot(prom, org, tmp_path):
    run("import_openslo", *files(tmp_path, a=AVAILABILITY), "--org", "acme")
    # Set in the admin: OpenSLO has no field for it, so a file without our annotation
    # leaves it alone.
    SLO.objects.filter(slug="api-availability").update(min_events=50, page=False)

    output = run(
        "import_openslo", *files(tmp_path, a=slo_text("api-availability", "0.995")), "--org", "acme"
    )

    assert "updated: api-availability" in output
    slo = SLO.objects.get(slug="api-availability")
    assert (slo.objective, slo.min_events, slo.page) == (99.5, 50, False)


def test_a_file_that_fails_anywhere_imports_nothing(prom, org, tmp_path):
    second_half_valid = slo_text("checkout-availability") + "---\n" + slo_text("bad", target="99.9")
    paths = files(tmp_path, a=AVAILABILITY, b=second_half_valid)

    with pytest.raises(CommandError) as refused:
        run("import_openslo", *paths, "--org", "acme")

    assert str(refused.value) == (
        f"Nothing imported. {paths[1]}, document 2 (SLO bad), spec.objectives[0].target: "
        "99.9: the target is a share strictly between 0 and 1, e.g. 0.999"
    )
    assert not SLO.objects.exists()


def test_what_the_source_or_the_organisation_refuses_imports_nothing_either(
    prom, org, fake, tmp_path
):
    def format_query(handler):
        query = fake.requests[-1]["params"]["query"]
        if "broken_total" in query:
            error = {"status": "error", "errorType": "bad_data", "error": "unknown metric"}
            return fake.json(400, error)(handler)
        return fake.json(200, {"status": "success", "data": query})(handler)

    fake.routes["/api/v1/format_query"] = format_query
    unknown_service = slo_text("elsewhere").replace("service: api", "service: billing")
    paths = files(
        tmp_path,
        a=AVAILABILITY,
        b=slo_text("broken", query="sum(rate(broken_total[5m]))") + "---\n" + unknown_service,
    )

    with pytest.raises(CommandError) as refused:
        run("import_openslo", *paths, "--org", "acme")

    lines = str(refused.value).splitlines()
    assert lines[0] == "Nothing imported."
    assert lines[1] == (
        f"{paths[1]}, document 1 (SLO broken), spec.indicator.spec.ratioMetric.total."
        "metricSource.spec.query: Prometheus refused 'broken_total': unknown metric"
    )
    assert lines[2] == (
        f"{paths[1]}, document 2 (SLO elsewhere), spec.service: Unknown service 'billing' "
        "in this organisation."
    )
    assert not SLO.objects.exists()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("spec: [1, 2\n", "a.yaml: not YAML at line 2, column 1"),
        (AVAILABILITY.replace("openslo/v1", "openslo/v1alpha"), "a.yaml, document 1, apiVersion"),
    ],
)
def test_a_file_that_is_not_yaml_or_not_v1_imports_nothing(prom, tmp_path, text, expected):
    paths = files(tmp_path, ok=BACKUPS, a=text)

    with pytest.raises(CommandError, match="Nothing imported") as refused:
        run("import_openslo", *paths, "--org", "acme")

    assert f"{tmp_path}/{expected}" in str(refused.value)
    assert not SLO.objects.exists()


def test_a_missing_file_and_an_unknown_organisation_are_refused(prom, tmp_path):
    with pytest.raises(CommandError, match=r"nope.yaml: No such file or directory"):
        run("import_openslo", str(tmp_path / "nope.yaml"), "--org", "acme")
    with pytest.raises(CommandError, match="No organisation with the slug 'initech'"):
        run("import_openslo", *files(tmp_path, a=AVAILABILITY), "--org", "initech")


def test_the_source_comes_from_the_file_from_source_or_is_asked_for(prom, org, fake, tmp_path):
    make_source(org, fake.url, name="eu")
    paths = files(tmp_path, a=AVAILABILITY)

    with pytest.raises(CommandError) as refused:
        run("import_openslo", *paths, "--org", "acme")
    assert "organisation acme has 2 sources (eu, prom); name one with --source" in str(
        refused.value
    )
    with pytest.raises(CommandError, match=r"has no source 'us' \(its sources: eu, prom\)"):
        run("import_openslo", *paths, "--org", "acme", "--source", "us")

    run("import_openslo", *paths, "--org", "acme", "--source", "eu")
    assert SLO.objects.get(slug="api-availability").source.name == "eu"

    # A metricSourceRef names the source itself, whatever --source says.
    referring = slo_text("named").replace(
        "            type: Prometheus\n",
        "            metricSourceRef: prom\n            type: Prometheus\n",
    )
    run("import_openslo", *files(tmp_path, b=referring), "--org", "acme", "--source", "eu")
    assert SLO.objects.get(slug="named").source.name == "prom"

    with pytest.raises(CommandError) as refused:
        run(
            "import_openslo",
            *files(
                tmp_path,
                c=referring.replace("named", "other").replace(
                    "metricSourceRef: prom", "metricSourceRef: us"
                ),
            ),
            "--org",
            "acme",
        )
    assert refused.value.args[0].endswith(
        "spec.indicator.spec.ratioMetric.total.metricSource.metricSourceRef: "
        "Unknown source 'us' in this organisation."
    )


def test_an_unreachable_source_does_not_block_and_is_said(org, tmp_path):
    Service.objects.create(organization=org, slug="api", name="API")
    make_source(org, "http://127.0.0.1:9")  # the discard port: nobody answers

    output = run("import_openslo", *files(tmp_path, a=AVAILABILITY), "--org", "acme")

    assert "created: api-availability" in output
    assert "(SLO api-availability): Not checked:" in output


def test_a_dry_run_checks_everything_and_saves_nothing(prom, tmp_path):
    output = run("import_openslo", *files(tmp_path, a=AVAILABILITY), "--org", "acme", "--dry-run")

    assert output.splitlines()[:2] == [
        "Dry run: nothing was saved. It would have:",
        "created: api-availability",
    ]
    assert not SLO.objects.exists()


def make_slos(organization: Organization, source_name: str) -> None:
    """A ratio, a threshold and a latency SLO, saved as the API saves them."""
    make_runbook(organization, "api-down")
    slos = [
        {
            "slug": "api-availability",
            "name": "API availability",
            "description": "Answers without a 5xx.\nSecond line: é ✓",
            "service": "api",
            "source": source_name,
            "sli": {
                "kind": "ratio",
                "bad": 'http_requests_total{code=~"5..", path!="/health"}',
                "total": 'http_requests_total{path!="/health"}',
            },
            "objective": 99.95,
            "window": "30d",
            "min_events": 100,
            "page": False,
            "runbook": "api-down",
            "labels": {"team": "payments", "tier": "1"},
        },
        {
            "slug": "backup-rpo",
            "name": "Backups younger than 24 h",
            "source": source_name,
            "sli": {
                "kind": "threshold",
                "expr": "time() - backup_last_success_timestamp_seconds",
                "op": "<=",
                "threshold": 86400,
            },
            "objective": 99.0,
            "window": "quarter",
            "time_zone": "America/New_York",
            "budgeting": "timeslices",
            "slice_length": "15m",
            "enabled": False,
        },
        {
            "slug": "api-latency",
            "name": "API latency",
            "service": "api",
            "source": source_name,
            "sli": {
                "kind": "latency",
                "metric": "http_request_duration_seconds",
                "selector": 'route="/api/v1/slos/"',
                "threshold": 0.25,
            },
            "objective": 95.0,
            "window": "week",
            "time_zone": "Europe/Paris",
            "budgeting": "timeslices",
            "slice_length": "1m",
            "slice_target": 0.9,
        },
    ]
    for document in slos:
        editing.save(documents.apply(organization, document), Actor.system("test"))


def test_export_then_import_into_another_organisation_gives_the_same_slos(
    org, other_org, fake, tmp_path
):
    # The histogram's buckets, as the source spells them (asked when a latency SLO is checked).
    buckets = [{"metric": {"le": le}, "value": [0, "1"]} for le in ("0.1", "0.25", "+Inf")]
    fake.answer(200, vector(*buckets))
    for organization in (org, other_org):
        Service.objects.create(organization=organization, slug="api", name="API")
        make_source(organization, fake.url)
    make_runbook(other_org, "api-down")
    make_slos(org, "prom")
    export = tmp_path / "acme.yaml"

    stdout = run("export_openslo", "--org", "acme")
    call_command("export_openslo", "--org", "acme", "--output", str(export), stderr=io.StringIO())
    output = run("import_openslo", str(export), "--org", "globex")

    assert export.read_text() == stdout
    assert "created: api-availability, api-latency, backup-rpo" in output
    exported = {
        slo.slug: documents.to_document(slo) for slo in SLO.objects.filter(organization=org)
    }
    imported = {
        slo.slug: documents.to_document(slo) for slo in SLO.objects.filter(organization=other_org)
    }
    # The latency SLI comes back as the ratio of its bucket (as the source spells its
    # le) to its count.
    exported["api-latency"]["sli"] = {
        "kind": "ratio",
        "good": 'http_request_duration_seconds_bucket{route="/api/v1/slos/", le="0.25"}',
        "total": 'http_request_duration_seconds_count{route="/api/v1/slos/"}',
    }
    assert json.dumps(imported, sort_keys=True, indent=1) == json.dumps(
        exported, sort_keys=True, indent=1
    )


def test_an_export_re_imported_changes_nothing_but_latency_slis(org, fake, tmp_path):
    fake.answer(200, vector({"metric": {"le": "0.25"}, "value": [0, "1"]}))
    Service.objects.create(organization=org, slug="api", name="API")
    make_source(org, fake.url)
    make_slos(org, "prom")
    export = tmp_path / "acme.yaml"
    errors = io.StringIO()
    # With one organisation, --org may be left out.
    call_command("export_openslo", "--output", str(export), stderr=errors)

    output = run("import_openslo", str(export), "--org", "acme")

    assert output.splitlines()[:3] == [
        "created: none",
        "updated: api-latency",
        "unchanged: api-availability, backup-rpo",
    ]
    assert f"3 SLOs of acme written to {export}." in errors.getvalue()
    assert "note: SLO api-latency: its latency SLI" in errors.getvalue()
    assert "note: SLO backup-rpo: no service, which OpenSLO requires" in errors.getvalue()


def test_export_asks_for_the_organisation_when_there_are_several(org, other_org):
    with pytest.raises(CommandError, match="Name the organisation with --org: there are several"):
        run("export_openslo")
    with pytest.raises(CommandError, match="No organisation with the slug 'initech'"):
        run("export_openslo", "--org", "initech")
    assert run("export_openslo", "--org", "globex") == (
        "# The SLOs of organisation globex, as OpenSLO v1.\n"
    )


def test_a_save_that_fails_midway_leaves_nothing_saved(prom, monkeypatch, tmp_path):
    saved = []
    save = editing.save

    def save_then_fail(slo, actor):
        if saved:
            # As when an admin creates the same slug between the check and the save.
            raise IntegrityError("duplicate key value violates unique constraint")
        saved.append(slo.slug)
        return save(slo, actor)

    monkeypatch.setattr(editing, "save", save_then_fail)
    paths = files(tmp_path, a=AVAILABILITY, b=BACKUPS)

    with pytest.raises(CommandError, match="Nothing imported: duplicate key"):
        run("import_openslo", *paths, "--org", "acme")

    assert saved == ["api-availability"]
    assert not SLO.objects.exists()
