"""manage.py export_grafana_dashboards: what it writes, and bad input."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from controlplane.dashboards import slos
from controlplane.slo.models import SLO
from tests.factories import make_slo

pytestmark = pytest.mark.django_db


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("export_grafana_dashboards", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_writes_the_shared_dashboards_and_one_per_slo(org, other_org, tmp_path):
    make_slo(org, "api-availability")
    make_slo(other_org, "checkout")

    out, _ = run("--out", str(tmp_path))

    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.json"))
    assert files == [
        "control-plane.json",
        "jobs.json",
        "slo/acme/api-availability.json",
        "slo/globex/checkout.json",
        "slos.json",
    ]
    doc = json.loads((tmp_path / "slo/acme/api-availability.json").read_text())
    assert doc["uid"] == slos.slo_uid("acme", "api-availability")
    assert "5 dashboards written" in out


def test_org_narrows_to_one_organisation(org, other_org, tmp_path):
    make_slo(org, "api-availability")
    make_slo(other_org, "checkout")

    run("--org", "globex", "--out", str(tmp_path))

    assert not (tmp_path / "slo" / "acme").exists()
    assert (tmp_path / "slo/globex/checkout.json").exists()


def test_an_unknown_organisation_is_named_and_nothing_is_written(org, tmp_path):
    with pytest.raises(CommandError, match="No organisation with the slug 'initech'"):
        run("--org", "initech", "--out", str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_an_slo_whose_query_no_longer_parses_is_named_and_the_others_written(org, tmp_path):
    make_slo(org, "api-availability")
    make_slo(org, "checkout")
    # A row no form would save: the total's selector lost its closing brace.
    SLO.objects.filter(slug="checkout").update(total='http_requests_total{job="web"')

    with pytest.raises(CommandError, match="1 SLO dashboard"):
        run("--out", str(tmp_path))

    assert (tmp_path / "slo/acme/api-availability.json").exists()
    assert (tmp_path / "control-plane.json").exists()
    assert not (tmp_path / "slo/acme/checkout.json").exists()


def test_the_failure_message_names_the_slo(org, tmp_path, capsys):
    make_slo(org, "checkout")
    SLO.objects.filter(slug="checkout").update(total="", bad="")
    err = io.StringIO()
    with pytest.raises(CommandError):
        call_command("export_grafana_dashboards", "--out", str(tmp_path), stderr=err)
    assert "acme/checkout" in err.getvalue()
