"""A rule names its escalation policy by slug through the API, within its organisation."""

from __future__ import annotations

import pytest

from controlplane.alerting.models import AlertRule
from tests.factories import make_channel, make_policy

pytestmark = pytest.mark.django_db

RULE = {"key": "queue.deep", "name": "Queue deep", "expr": "alerts.firing"}


@pytest.fixture
def writer(api, write_token):
    return api(write_token)


def test_a_rule_names_its_policy_and_reads_it_back(writer, org):
    hook = make_channel(org, "hook", "webhook", url="https://ok.example/h")
    make_policy(org, "ops", steps=[(0, [hook])])

    created = writer.post("/api/v1/rules/", {**RULE, "escalation_policy": "ops"}, format="json")

    assert created.status_code == 201, created.json()
    assert AlertRule.objects.get(key="queue.deep").escalation_policy.slug == "ops"
    assert writer.get("/api/v1/rules/queue.deep/").json()["escalation_policy"] == "ops"
    cleared = writer.patch("/api/v1/rules/queue.deep/", {"escalation_policy": None}, format="json")
    assert cleared.json()["escalation_policy"] is None


@pytest.mark.parametrize("where", ["nowhere", "other"])
def test_an_unknown_or_foreign_policy_is_refused(writer, org, other_org, where):
    if where == "other":
        hook = make_channel(other_org, "hook", "webhook", url="https://ok.example/h")
        make_policy(other_org, "ops", steps=[(0, [hook])])

    response = writer.post("/api/v1/rules/", {**RULE, "escalation_policy": "ops"}, format="json")

    assert response.status_code == 400
    assert response.json()["errors"]["escalation_policy"] == [
        "Unknown escalation policy 'ops' in this organisation."
    ]
    assert not AlertRule.objects.filter(key="queue.deep").exists()
