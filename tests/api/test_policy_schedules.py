"""A policy's steps name on-call schedules by slug, within the organisation."""

from __future__ import annotations

import pytest

from controlplane.paging.models import EscalationPolicy
from tests.factories import make_channel, make_schedule

pytestmark = pytest.mark.django_db

URL = "/api/v1/escalation-policies/"


@pytest.fixture
def writer(api, write_token):
    return api(write_token)


def body(*steps: dict) -> dict:
    return {"slug": "ops", "name": "Ops", "steps": list(steps)}


def test_a_step_names_schedules_by_slug_and_reads_them_back(writer, org):
    make_channel(org, "ops-mail", "email", to=["ops@example.com"])
    primary, secondary = make_schedule(org, "primary"), make_schedule(org, "secondary")

    created = writer.post(
        URL,
        body(
            {"delay": "0s", "channels": ["ops-mail"]},
            {"delay": "5m", "channels": [], "schedules": ["secondary", "primary"]},
        ),
        format="json",
    )

    assert created.status_code == 201, created.json()
    assert created.json()["steps"] == writer.get(f"{URL}ops/").json()["steps"]
    assert created.json()["steps"][1] == {
        "delay": "5m",
        "channels": [],
        "schedules": ["primary", "secondary"],
    }
    snapshot = EscalationPolicy.objects.get(slug="ops").snapshot()
    assert snapshot.steps[1].schedules == tuple(sorted([primary.pk, secondary.pk]))


@pytest.mark.parametrize(
    ("step", "errors"),
    [
        (
            {"delay": "0s", "channels": [], "schedules": ["theirs"]},
            {"steps[0].schedules": ["Unknown on-call schedule 'theirs' in this organisation."]},
        ),
        (
            {"delay": "0s", "channels": [], "schedules": ["primary", "primary"]},
            {"steps[0].schedules": ["'primary' is listed more than once."]},
        ),
        (
            {"delay": "0s", "channels": []},
            {"steps[0].channels": ["A step needs at least one channel or schedule."]},
        ),
    ],
    ids=["another-organisations", "twice", "neither"],
)
def test_a_schedule_of_another_organisation_is_unknown_and_none_twice(
    writer, org, other_org, step, errors
):
    make_schedule(org, "primary")
    make_schedule(other_org, "theirs")

    answer = writer.post(URL, body(step), format="json")

    assert answer.status_code == 400
    assert answer.json()["errors"] == errors
