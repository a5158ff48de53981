"""The alert list narrowed to one organisation (?organization=<slug>), where the
overview's "All N alerts" links lead a reader of several."""

from __future__ import annotations

import pytest

from controlplane.catalog.models import Membership, Role
from tests.factories import make_alert, make_rule

pytestmark = pytest.mark.django_db


def rule_keys(html: str) -> list[str]:
    marker = '<td class="rule"><a href="'
    return sorted(part.split(">", 1)[1].split("<", 1)[0] for part in html.split(marker)[1:])


@pytest.fixture
def both(client, org, other_org, member):
    reader = member(org, Role.VIEWER, username="both")
    Membership.objects.create(organization=other_org, user=reader, role=Role.VIEWER)
    make_alert(make_rule(org, "a.errors", severity="critical"), "a1")
    make_alert(make_rule(org, "a.latency", severity="warning"), "a2")
    make_alert(make_rule(other_org, "b.errors"), "b1")
    client.force_login(reader)
    return client


def test_the_list_narrows_to_the_organisation_named(both):
    assert rule_keys(both.get("/alerts/").content.decode()) == ["a.errors", "a.latency", "b.errors"]
    text = both.get("/alerts/?organization=acme").content.decode()
    assert rule_keys(text) == ["a.errors", "a.latency"]
    assert "<h1>Alerts of Acme</h1>" in text
    # Filtering again keeps the organisation.
    assert '<input type="hidden" name="organization" value="acme">' in text
    narrowed = both.get("/alerts/?organization=acme&severity=warning").content.decode()
    assert rule_keys(narrowed) == ["a.latency"]
    assert rule_keys(both.get("/alerts/?organization=globex").content.decode()) == ["b.errors"]


def test_another_or_no_organisations_slug_is_not_found(client, org, other_org, member):
    reader = member(org, Role.VIEWER)
    make_alert(make_rule(other_org, "b.errors"), "b1")
    client.force_login(reader)
    for slug in ("globex", "nope"):
        answer = client.get(f"/alerts/?organization={slug}")
        assert answer.status_code == 404
        assert "b.errors" not in answer.content.decode()
    assert client.get("/alerts/?organization=acme").status_code == 200


def test_narrowing_costs_one_query_more(both, django_assert_max_num_queries):
    # The list's own pin (tests/alerting) holds without ?organization=; naming one adds
    # the organisation's lookup.
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as plain:
        both.get("/alerts/")
    with django_assert_max_num_queries(len(plain) + 1):
        assert both.get("/alerts/?organization=acme").status_code == 200
