"""Escalation policies through the API: steps by channel name, checked as an alert will
run them, versions raised by every write, the default moved in one write, walls."""

from __future__ import annotations

from datetime import timedelta

import pytest

from controlplane.alerting import outbox
from controlplane.paging.models import Escalation, EscalationPolicy, EscalationStep
from tests.factories import make_alert, make_channel, make_policy, make_rule

pytestmark = pytest.mark.django_db

URL = "/api/v1/escalation-policies/"


@pytest.fixture
def writer(api, write_token):
    return api(write_token)


@pytest.fixture
def channels(org) -> dict:
    return {
        name: make_channel(org, name, "email", to=[f"{name}@example.com"])
        for name in ("ops-mail", "ops-pager", "managers")
    }


def policy_body(**fields) -> dict:
    return {
        "slug": "ops",
        "name": "Ops",
        "steps": [
            {"delay": "0s", "channels": ["ops-mail"]},
            {"delay": "5m", "channels": ["ops-pager", "managers"]},
        ],
        **fields,
    }


def steps_of(slug: str) -> list[tuple[timedelta, list[str]]]:
    policy = EscalationPolicy.objects.get(slug=slug)
    return [
        (step.delay, sorted(c.name for c in step.channels.all()))
        for step in policy.steps.order_by("position")
    ]


def test_create_and_read_back(writer, org, channels):
    created = writer.post(URL, policy_body(repeat=1, remind_every="30m"), format="json")

    assert created.status_code == 201, created.json()
    read = writer.get(f"{URL}ops/").json()
    [listed] = writer.get(URL).json()["results"]
    for answer in (created.json(), read, listed):
        assert answer["slug"] == "ops"
        assert answer["name"] == "Ops"
        assert answer["default"] is False
        assert answer["steps"] == [
            {"delay": "0s", "channels": ["ops-mail"], "schedules": []},
            {"delay": "5m", "channels": ["managers", "ops-pager"], "schedules": []},
        ]
        assert (answer["repeat"], answer["remind_every"]) == (1, "30m")
        assert answer["notify_on_resolve"] is False
        assert answer["version"] == 1
        assert answer["updated_at"]
    assert steps_of("ops") == [
        (timedelta(0), ["ops-mail"]),
        (timedelta(minutes=5), ["managers", "ops-pager"]),
    ]
    EscalationPolicy.objects.get(organization=org, slug="ops").check_snapshot()


def test_every_write_raises_the_version(writer, channels):
    writer.post(URL, policy_body(), format="json")

    renamed = writer.patch(f"{URL}ops/", {"name": "Ops team"}, format="json")
    replaced = writer.put(
        f"{URL}ops/",
        {"slug": "ops", "name": "Ops", "steps": [{"delay": "1m", "channels": ["managers"]}]},
        format="json",
    )
    patched_steps = writer.patch(
        f"{URL}ops/",
        {"steps": [{"channels": ["ops-mail"]}, {"delay": "1h", "channels": ["ops-pager"]}]},
        format="json",
    )

    assert [r.status_code for r in (renamed, replaced, patched_steps)] == [200, 200, 200]
    assert [r.json()["version"] for r in (renamed, replaced, patched_steps)] == [2, 3, 4]
    assert renamed.json()["steps"][1]["channels"] == ["managers", "ops-pager"]
    assert replaced.json()["steps"] == [{"delay": "1m", "channels": ["managers"], "schedules": []}]
    assert patched_steps.json()["steps"] == [
        {"delay": "0s", "channels": ["ops-mail"], "schedules": []},
        {"delay": "1h", "channels": ["ops-pager"], "schedules": []},
    ]
    assert EscalationStep.objects.count() == 2
    assert EscalationPolicy.objects.get(slug="ops").version == 4


def test_put_resets_what_it_leaves_out(writer, channels):
    writer.post(
        URL, policy_body(repeat=2, remind_every="1h", notify_on_resolve=True), format="json"
    )

    response = writer.put(f"{URL}ops/", policy_body(), format="json")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["repeat"], body["remind_every"], body["notify_on_resolve"]) == (0, None, False)


def test_an_alert_escalating_keeps_the_version_it_opened_on(writer, org, channels):
    writer.post(URL, policy_body(default=True), format="json")
    make_alert(make_rule(org))
    outbox.drain()

    writer.put(f"{URL}ops/", policy_body(default=True, repeat=0, name="Changed"), format="json")

    escalation = Escalation.objects.get()
    assert (escalation.policy.slug, escalation.policy_version) == ("ops", 1)
    assert EscalationPolicy.objects.get(slug="ops").version == 2


def test_default_moves_to_the_policy_that_claims_it(writer, org, channels):
    make_policy(org, "old", steps=[(0, [channels["ops-mail"]])], is_default=True)

    created = writer.post(URL, policy_body(default=True), format="json")

    assert created.status_code == 201, created.json()
    assert created.json()["default"] is True
    defaults = EscalationPolicy.objects.filter(is_default=True)
    assert list(defaults.values_list("slug", flat=True)) == ["ops"]
    assert writer.get(f"{URL}old/").json()["default"] is False
    back = writer.patch(f"{URL}old/", {"default": True}, format="json")
    assert back.json()["default"] is True
    assert writer.get(f"{URL}ops/").json()["default"] is False
    unset = writer.patch(f"{URL}old/", {"default": False}, format="json")
    assert unset.json()["default"] is False
    assert not EscalationPolicy.objects.filter(is_default=True).exists()


def test_the_default_of_another_organisation_stays(writer, org, other_org, channels):
    theirs = make_channel(other_org, "ops-mail", "email", to=["them@example.com"])
    make_policy(other_org, "theirs", steps=[(0, [theirs])], is_default=True)

    writer.post(URL, policy_body(default=True), format="json")

    assert EscalationPolicy.objects.get(slug="theirs").is_default is True


STEP = {"delay": "0s", "channels": ["ops-mail"]}


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        (
            {"steps": [STEP, {"delay": "1m", "channels": []}]},
            {"steps[1].channels": ["A step needs at least one channel or schedule."]},
        ),
        (
            {"steps": [STEP, {"delay": "-5m", "channels": ["ops-mail"]}]},
            {"steps[1].delay": ["Duration '-5m' is negative: durations cannot be negative."]},
        ),
        (
            {"steps": [STEP, {"delay": "1500ms", "channels": ["ops-mail"]}]},
            {"steps[1].delay": ["Must be a whole number of seconds."]},
        ),
        (
            {"steps": [STEP, {"delay": "8d", "channels": ["ops-mail"]}]},
            {"steps[1].delay": ["Must be at most 604800 seconds (7 days)."]},
        ),
        (
            {"steps": [STEP, {"delay": "1m", "channels": ["nowhere"]}]},
            {"steps[1].channels": ["Unknown channel 'nowhere' in this organisation."]},
        ),
        (
            {"steps": [{"delay": "0s", "channels": ["ops-mail", "ops-mail"]}]},
            {"steps[0].channels": ["'ops-mail' is listed more than once."]},
        ),
        (
            {"steps": [{"delay": "0s", "channels": [""]}]},
            {"steps[0].channels": ["Item 1: This field may not be blank."]},
        ),
        (
            {"steps": [{"delay": "0s", "channels": ["ops-mail"], "colour": "red"}]},
            {"steps[0].colour": ["Unknown field. The fields are: channels, delay, schedules."]},
        ),
        (
            {"steps": [STEP, "ops-mail"]},
            {"steps[1]": ["Invalid data. Expected a dictionary, but got str."]},
        ),
        ({"steps": []}, {"steps": ["A policy needs at least one step."]}),
        (
            {"steps": [{"delay": "0s", "channels": ["ops-mail"]}], "repeat": 2},
            {
                "repeat": [
                    "Repeating needs at least one step with a delay: with none, every loop "
                    "would fire at the same moment."
                ]
            },
        ),
        ({"repeat": 11}, {"repeat": ["Ensure this value is less than or equal to 10."]}),
        ({"remind_every": "30s"}, {"remind_every": ["Must be at least 60 seconds."]}),
        ({"remind_every": "0s"}, {"remind_every": ["Must be positive."]}),
        ({"slug": "Not A Slug"}, None),
    ],
    ids=[
        "no-channel",
        "negative-delay",
        "fractional-delay",
        "too-long",
        "unknown-channel",
        "twice",
        "blank-name",
        "unknown-field",
        "not-an-object",
        "no-step",
        "repeat-without-delay",
        "repeat-too-many",
        "remind-too-often",
        "remind-zero",
        "slug",
    ],
)
def test_bad_policies_are_400_naming_the_field(writer, org, channels, fields, errors):
    response = writer.post(URL, policy_body(**fields), format="json")

    assert response.status_code == 400, response.json()
    if errors is None:
        assert list(response.json()["errors"]) == list(fields)
    else:
        assert response.json()["errors"] == errors
        field, [message] = next(iter(errors.items()))
        assert f"{field}: {message}" in response.json()["detail"]
    assert not EscalationPolicy.objects.filter(organization=org).exists()


def test_a_foreign_channel_is_unknown(writer, org, other_org, channels):
    make_channel(other_org, "their-hook", "webhook", url="https://them.example/h")

    response = writer.post(
        URL, policy_body(steps=[STEP, {"channels": ["their-hook"]}]), format="json"
    )

    assert response.status_code == 400
    assert response.json()["errors"] == {
        "steps[1].channels": ["Unknown channel 'their-hook' in this organisation."]
    }
    assert not EscalationPolicy.objects.exists()


def test_a_refused_update_changes_nothing(writer, channels):
    writer.post(URL, policy_body(), format="json")

    response = writer.put(
        f"{URL}ops/",
        policy_body(name="Changed", steps=[{"delay": "-1m", "channels": ["ops-mail"]}]),
        format="json",
    )
    patched = writer.patch(f"{URL}ops/", {"repeat": 3}, format="json")

    assert response.status_code == 400
    assert "steps[0].delay" in response.json()["errors"]
    # The stored steps have a delay: repeating them is fine, and checked with them.
    assert patched.status_code == 200, patched.json()
    policy = EscalationPolicy.objects.get(slug="ops")
    assert (policy.name, policy.version, policy.repeat) == ("Ops", 2, 3)
    assert len(steps_of("ops")) == 2


def test_a_patch_is_checked_with_the_stored_steps(writer, org, channels):
    make_policy(org, "instant", steps=[(0, [channels["ops-mail"]])])

    response = writer.patch(f"{URL}instant/", {"repeat": 1}, format="json")

    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["repeat"]
    assert EscalationPolicy.objects.get(slug="instant").version == 1


def test_duplicate_slug_is_refused(writer, org, channels):
    make_policy(org, "ops", steps=[(0, [channels["ops-mail"]])])

    response = writer.post(URL, policy_body(), format="json")

    assert response.status_code == 400
    assert response.json()["errors"]["slug"] == ["A policy with the slug 'ops' already exists."]


def test_deleting_a_policy_rules_name_is_409_naming_them(writer, org, channels):
    policy = make_policy(org, "ops", steps=[(0, [channels["ops-mail"]])])
    make_rule(org, "queue.deep", escalation_policy=policy)
    make_rule(org, "api.slow", escalation_policy=policy)

    response = writer.delete(f"{URL}ops/")

    assert response.status_code == 409
    assert response.json()["rules"] == ["api.slow", "queue.deep"]
    assert "api.slow, queue.deep" in response.json()["detail"]
    assert EscalationPolicy.objects.filter(pk=policy.pk).exists()


def test_deleting_an_unused_policy(writer, org, channels):
    make_policy(org, "ops", steps=[(0, [channels["ops-mail"]])])

    assert writer.delete(f"{URL}ops/").status_code == 204
    assert not EscalationPolicy.objects.exists()
    assert not EscalationStep.objects.exists()


def test_another_organisations_policy_is_404_and_never_listed(api, write_token, other_org):
    theirs = make_channel(other_org, "hook", "webhook", url="https://them.example/h")
    make_policy(other_org, "theirs", steps=[(0, [theirs])])
    client = api(write_token)

    assert client.get(URL).json()["results"] == []
    assert client.get(f"{URL}theirs/").status_code == 404
    assert client.patch(f"{URL}theirs/", {"name": "Mine"}, format="json").status_code == 404
    assert client.delete(f"{URL}theirs/").status_code == 404
    assert EscalationPolicy.objects.get(slug="theirs").name == "theirs"


def test_read_token_cannot_write(api, read_token, org, channels):
    make_policy(org, "ops", steps=[(0, [channels["ops-mail"]])])
    client = api(read_token)

    answers = [
        client.post(URL, policy_body(slug="new"), format="json"),
        client.put(f"{URL}ops/", policy_body(), format="json"),
        client.patch(f"{URL}ops/", {"name": "Renamed"}, format="json"),
        client.delete(f"{URL}ops/"),
    ]

    assert [a.status_code for a in answers] == [403, 403, 403, 403]
    policy = EscalationPolicy.objects.get()
    assert (policy.slug, policy.name, policy.version) == ("ops", "ops", 1)
    assert client.get(f"{URL}ops/").status_code == 200


def test_the_list_costs_a_fixed_number_of_queries(
    api, read_token, org, channels, django_assert_max_num_queries
):
    named = list(channels.values())
    for number in range(10):
        make_policy(
            org, f"policy-{number:02}", steps=[(0, named[:2]), (60, named[1:]), (120, named)]
        )
    client = api(read_token)

    # The token, its last use, the count, the page, the steps, their channels and
    # on-call schedules.
    with django_assert_max_num_queries(7):
        body = client.get(URL).json()

    assert body["count"] == 10
    assert body["results"][0]["steps"] == [
        {"delay": "0s", "channels": ["ops-mail", "ops-pager"], "schedules": []},
        {"delay": "1m", "channels": ["managers", "ops-pager"], "schedules": []},
        {"delay": "2m", "channels": ["managers", "ops-mail", "ops-pager"], "schedules": []},
    ]
