"""The generated dashboards: Grafana's essentials, stable and unique uids, the committed
provisioning files equal to what the code makes, and every panel documented."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from controlplane.dashboards import export, grafana, slos
from controlplane.slo.definition import Ratio
from tests.dashboards import samples

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "deploy" / "grafana" / "dashboards"
DOCS = ROOT / "docs" / "observability" / "dashboards.md"


def all_dashboards() -> dict[str, dict]:
    return samples.exported().dashboards


def test_every_dashboard_has_grafanas_essentials():
    for name, doc in all_dashboards().items():
        doc = json.loads(export.dumps(doc))  # as the file holds it
        assert doc["title"], name
        assert doc["schemaVersion"] >= 36, name
        assert 0 < len(doc["uid"]) <= 40, name
        assert [a["datasource"]["uid"] for a in doc["annotations"]["list"]] == [
            "controlplane-api"
        ] * 3, name
        ids = [panel["id"] for panel in doc["panels"]]
        assert len(ids) == len(set(ids)), name
        for panel in grafana.panels(doc):
            assert panel["title"], name
            assert panel["type"] in {"timeseries", "stat"}, name
            assert set(panel["gridPos"]) == {"h", "w", "x", "y"}, (name, panel["title"])
            assert panel["datasource"] == {"type": "prometheus", "uid": "prometheus"}
            refs = [target["refId"] for target in panel["targets"]]
            assert refs, (name, panel["title"])
            assert len(refs) == len(set(refs)), (name, panel["title"])


def test_uids_are_stable_across_runs_and_unique():
    first, second = all_dashboards(), all_dashboards()
    assert first == second
    uids = [doc["uid"] for doc in first.values()]
    assert len(uids) == len(set(uids))
    assert first["slo/acme/api-availability.json"]["uid"] == slos.slo_uid(
        "acme", "api-availability"
    )
    # Not confused by slugs that read alike once joined.
    assert slos.slo_uid("a-b", "c") != slos.slo_uid("a", "b-c")
    assert len(slos.slo_uid("o" * 50, "s" * 50)) <= 40


def test_the_latency_panel_shows_exemplars():
    doc = all_dashboards()["control-plane.json"]
    panel = next(p for p in grafana.panels(doc) if p["title"] == "API p95 latency by route")
    assert panel["targets"][0]["exemplar"] is True


def test_an_slo_dashboard_bakes_in_its_objective_window_and_thresholds():
    doc = all_dashboards()["slo/acme/api-availability.json"]
    exprs = {p["title"]: [t["expr"] for t in p["targets"]] for p in grafana.panels(doc)}
    assert "vector(0.999)" in exprs["SLI from the raw series"]
    assert "vector(14.4)" in exprs["Burn rate per tier"]  # 30 days: the Workbook's factor
    assert "vector(100)" in exprs["Events in the window against the low-traffic minimum"]
    assert "[4w1d23h59m59s999ms]" in exprs["SLI against the objective"][0]
    assert doc["links"][0]["url"] == (
        "https://cp.example.com/slos/api-availability/?organization=acme"
    )
    # Its annotations are the SLO's own.
    params = doc["annotations"]["list"][0]["target"]["url_options"]["params"]
    assert {"key": "slo", "value": "api-availability"} in params


def test_rpo_slos_and_broken_slos_are_named_and_left_out():
    result = samples.exported()
    assert "globex/backup-rpo" in result.skipped
    assert not result.failed
    broken = dataclasses.replace(
        samples.DEFINITIONS[0][1], slug="broken", indicator=Ratio(total='x{a="b"', bad="y")
    )
    result = export.build_all([("acme", broken), *samples.DEFINITIONS[:1]], samples.AT)
    assert list(result.failed) == ["acme/broken"]
    assert "SLO acme/broken" in result.failed["acme/broken"]
    assert "slo/acme/api-availability.json" in result.dashboards


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        ('sum(rate(x{a="b"}[5m]))', ""),
        ('sum(rate(x{a="b"}[5m])', "an unclosed '('"),
        ('x{a="b}', "an unterminated string"),
        ("x{a='b'}]", "an unbalanced ']'"),
        ('x{a="(("}', ""),
    ],
)
def test_malformed_queries_are_caught_before_writing(expr, problem):
    assert grafana.malformed(expr) == problem


def test_the_committed_files_are_what_the_code_generates():
    expected = export.build_all([], samples.AT).dashboards
    assert set(expected) == set(export.SHARED)
    committed = {path.name for path in COMMITTED.glob("*.json")}
    assert committed == set(expected), "run manage.py export_grafana_dashboards"
    for name, doc in expected.items():
        assert (COMMITTED / name).read_text(encoding="utf-8") == export.dumps(doc), (
            f"{name} differs from the code: regenerate it with "
            f"manage.py export_grafana_dashboards (never edit it by hand)"
        )


def test_the_shared_dashboards_do_not_depend_on_time_or_slos():
    later = export.build_all(samples.DEFINITIONS, samples.AT + timedelta(days=40)).dashboards
    for name in export.SHARED:
        assert later[name] == export.build_all([], samples.AT).dashboards[name]


def test_every_panel_is_documented():
    text = DOCS.read_text(encoding="utf-8")
    titles = {panel["title"] for doc in all_dashboards().values() for panel in grafana.panels(doc)}
    missing = sorted(title for title in titles if title not in text)
    assert not missing, f"not in {DOCS.relative_to(ROOT)}: {missing}"


def test_the_provisioning_files_name_the_dashboards_data_sources():
    provisioning = ROOT / "deploy" / "grafana" / "provisioning"
    sources = yaml.safe_load((provisioning / "datasources" / "controlplane.yaml").read_text())
    by_uid = {source["uid"]: source for source in sources["datasources"]}
    assert by_uid["prometheus"]["type"] == "prometheus"
    destination = by_uid["prometheus"]["jsonData"]["exemplarTraceIdDestinations"][0]
    assert destination["name"] == "trace_id"
    assert destination["url"].startswith("$")
    api = by_uid["controlplane-api"]
    assert api["type"] == grafana.INFINITY_PLUGIN
    assert api["jsonData"]["auth_method"] == "bearerToken"
    assert api["secureJsonData"]["bearerToken"] == "$CONTROLPLANE_TOKEN"
    providers = yaml.safe_load((provisioning / "dashboards" / "controlplane.yaml").read_text())
    assert providers["providers"][0]["type"] == "file"
