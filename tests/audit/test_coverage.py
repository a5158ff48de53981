"""Every change of every configuration model is recorded, however it is written.

The first test lists every model of the project: a model is either `Audited` or named
below as state or a ledger, with the reason, so a new model cannot be forgotten. Then
each audited model is created, edited and deleted and must leave one event each, with
its organisation, a diff naming what changed and none of its secrets; bulk writes,
cascades, many-to-many changes, quiet state and the actor of each path follow.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import models
from django.db.models import F
from django.utils import timezone

from controlplane.alerting.models import AlertRule
from controlplane.audit.audited import Audited, AuditError, audited_models
from controlplane.audit.models import AuditEvent, Pseudonym, RetentionOverride
from controlplane.catalog.models import (
    ApiToken,
    Membership,
    Organization,
    Role,
    Service,
)
from controlplane.jobs.models import JobMonitor, PingKey, new_ping_key
from controlplane.oncall.models import Responder
from controlplane.paging import channels
from controlplane.paging.models import EscalationPolicy, EscalationStep, NotificationChannel
from controlplane.slo.models import SLO
from runbooks.models import Runbook
from tests.factories import (
    make_channel,
    make_integration,
    make_job,
    make_policy,
    make_rule,
    make_runbook,
    make_schedule,
    make_silence,
    make_slo,
    make_source,
    make_user,
)
from tests.oncall.ics import calendar, event, rotation

pytestmark = pytest.mark.django_db

APPS = {"catalog", "alerting", "paging", "oncall", "slo", "jobs", "audit", "runbooks"}

# Models a manager does not edit: state a task keeps, ledgers of what happened, and the
# trail itself. Each says where its changes are told, if anywhere.
STATE_AND_LEDGERS = {
    # What the evaluator last learnt of a source; its failures raise source.down.
    "catalog.SourceHealth",
    # A worker ran beat's heartbeat task: liveness, rewritten every minute.
    "catalog.WorkerHeartbeat",
    # A rule's evaluation state, written on every tick (definition apart from state).
    "alerting.RuleEvaluation",
    # Alerts and their timelines: the alerting recorder writes acknowledgements and
    # resolutions to the trail itself (alerting.lifecycle).
    "alerting.Alert",
    "alerting.AlertEvent",
    # How a channel's deliveries went, and the pace of its next one.
    "paging.ChannelHealth",
    # The policy snapshot an alert runs on; re-applying it is recorded by paging.
    "paging.Escalation",
    # The ledger of notifications; deliveries and give-ups are recorded by paging.
    "paging.Notification",
    # When an Alertmanager last posted, or was refused.
    "paging.IntegrationHealth",
    # How reading a schedule's calendars went, and the shifts each reading made.
    "oncall.ScheduleSync",
    "oncall.Shift",
    # An SLO's evaluation and its downsampled history.
    "slo.SLOEvaluation",
    "slo.SLOSnapshot",
    # A job monitor's state and the runs its pings report.
    "jobs.JobMonitorState",
    "jobs.JobRun",
    # The trail itself, the chain heads the sealer keeps, and the link from a
    # pseudonym to its person, which erasure deletes.
    "audit.AuditEvent",
    "audit.ChainHead",
    "audit.Pseudonym",
    # A runbook's revisions, written with each audited save of the runbook.
    "runbooks.RunbookRevision",
}


def project_models() -> list[type[models.Model]]:
    return [model for model in apps.get_models() if model._meta.app_label in APPS]


def events_of(obj: models.Model, pk: Any = None) -> list[AuditEvent]:
    return list(
        AuditEvent.objects.filter(
            object_type=obj._meta.label_lower, object_id=str(obj.pk if pk is None else pk)
        ).order_by("id")
    )


def trail_text() -> str:
    """Everything the trail stores that a reader sees, as one text to search."""
    rows = AuditEvent.objects.values("actor", "object_label", "diff")
    return json.dumps(list(rows), default=str)


# --- every model is audited or named --------------------------------------------------


def test_every_model_is_audited_or_named_as_state():
    audited = {m._meta.label for m in project_models() if issubclass(m, Audited)}
    others = {m._meta.label for m in project_models() if not issubclass(m, Audited)}

    forgotten = others - STATE_AND_LEDGERS
    assert not forgotten, (
        f"{sorted(forgotten)}: make each Audited (a configuration a manager edits) or name "
        "it in STATE_AND_LEDGERS with the reason"
    )
    assert not audited & STATE_AND_LEDGERS, "an audited model is also listed as state"
    assert STATE_AND_LEDGERS <= others, f"no longer models: {STATE_AND_LEDGERS - others}"
    assert set(CASES) == audited, "every audited model needs its case below"


# --- each audited model: created, updated, deleted ------------------------------------


@dataclass(frozen=True)
class Case:
    # The instance, saved, and the values the trail must never hold.
    make: Callable[[Organization], tuple[Audited, tuple[str, ...]]]
    # Attribute -> new value; a function receives the instance.
    changes: dict[str, Any]
    # The diff of the update, its one entry: exact, or "secret" / "personal" for a
    # value hidden, or {"from": ..., "to": "summary"} for long text summarised.
    diff: dict[str, Any]
    # Values the change brings that the trail must never hold.
    hidden_after: tuple[str, ...] = ()
    created_action: str = "created"
    # An organisation is its own chain; everything else is in its organisation's.
    own_chain: bool = False


def _organization(org: Organization):
    return Organization.objects.create(slug="initech", name="Initech"), ()


def _membership(org: Organization):
    user = make_user("mallory")
    return Membership.objects.create(organization=org, user=user, role=Role.VIEWER), ("mallory",)


def _service(org: Organization):
    return Service.objects.create(organization=org, slug="billing", name="Billing", team="pay"), ()


def _source(org: Organization):
    make_source(org, "http://prom.example:9090")  # the first, which built-in rules read
    source = make_source(
        org, "http://prom.example:9090", name="thanos", auth_header="Bearer sekrit-source-one"
    )
    return source, ("sekrit-source-one",)


def _token(org: Organization):
    token, plaintext = ApiToken.issue(org, ApiToken.Scope.READ, "ci")
    return token, (plaintext, token.digest)


def _ping_key(org: Organization):
    key = PingKey.objects.create(organization=org, name="nightly")
    return key, (key.key,)


def _job(org: Organization):
    return make_job(org, "nightly-backup"), ()


def _channel(org: Organization):
    channel = make_channel(
        org,
        "hook",
        "webhook",
        url="https://hooks.example.com/in/sekrit-path",
        secret="webhook-signing-secret-one",
        headers={"X-Api-Key": "header-credential-one"},
    )
    return channel, ("sekrit-path", "webhook-signing-secret-one", "header-credential-one")


def _new_webhook_secret(channel: NotificationChannel) -> dict:
    config = channels.merge_update(channel.settings(), {"secret": "webhook-signing-secret-two"})
    return channels.to_json(config)


def _policy_of(org: Organization, slug: str = "on-call") -> EscalationPolicy:
    """A policy an alert could run on: one step, to a channel of its own."""
    hook = make_channel(org, f"{slug}-hook", "webhook", url="https://hooks.example.com/in")
    return make_policy(org, slug, steps=[(0, [hook])])


def _policy(org: Organization):
    return _policy_of(org, "primary"), ()


def _step(org: Organization):
    policy = _policy_of(org, "stepped")
    return EscalationStep.objects.create(policy=policy, position=1), ()


def _integration(org: Organization):
    integration, key = make_integration(org)
    return integration, (key, integration.key_digest)


def _responder(org: Organization):
    user = make_user("peggy")
    Membership.objects.create(organization=org, user=user, role=Role.RESPONDER)
    responder = Responder.objects.create(organization=org, user=user, slack_member_id="U012AB3CD")
    return responder, ("peggy", "U012AB3CD")


def _on_call(name: str) -> str:
    return calendar(
        event("turn", "DTSTART:20260101T000000Z", "DTEND:20260102T000000Z", f"SUMMARY:{name}")
    ).decode()


def _schedule(org: Organization):
    schedule = make_schedule(org, "primary", ics_text=_on_call("walter-the-responder"))
    return schedule, ("walter-the-responder", schedule.export_key)


def _rule(org: Organization):
    return make_rule(org, "disk.full"), ()


def _silence(org: Organization):
    return make_silence(org, comment="maintenance"), ()


def _slo(org: Organization):
    return make_slo(org), ()


def _runbook(org: Organization):
    return make_runbook(org, "disk-full"), ()


LONG_BODY = "# Disk full\n\n## Triage\n\n" + "Free space on the volume named in the alert. " * 20


def _retention(org: Organization):
    return RetentionOverride.objects.create(organization=org, category="notifications", days=30), ()


CASES: dict[str, Case] = {
    "catalog.Organization": Case(
        _organization,
        {"name": "Initech Corporation"},
        {"name": {"from": "Initech", "to": "Initech Corporation"}},
        own_chain=True,
    ),
    "catalog.Membership": Case(
        _membership, {"role": Role.MANAGER}, {"role": {"from": "viewer", "to": "manager"}}
    ),
    "catalog.Service": Case(
        _service, {"team": "finance"}, {"team": {"from": "pay", "to": "finance"}}
    ),
    "catalog.MetricSource": Case(
        _source,
        {"auth_header": "Bearer sekrit-source-two"},
        {"auth_header": "secret"},
        hidden_after=("sekrit-source-two",),
    ),
    "catalog.ApiToken": Case(
        _token,
        {"name": "deploys"},
        {"name": {"from": "ci", "to": "deploys"}},
        created_action="token.created",
    ),
    "jobs.PingKey": Case(
        _ping_key,
        {"key": lambda key: new_ping_key()},
        {"key": "secret"},
    ),
    "jobs.JobMonitor": Case(
        _job,
        {"grace": datetime.timedelta(minutes=30)},
        {"grace": {"from": "P0DT00H15M00S", "to": "P0DT00H30M00S"}},
    ),
    "paging.NotificationChannel": Case(
        _channel,
        {"config": _new_webhook_secret},
        {"config.secret": "secret"},
        hidden_after=("webhook-signing-secret-two",),
    ),
    "paging.EscalationPolicy": Case(_policy, {"repeat": 2}, {"repeat": {"from": 0, "to": 2}}),
    "paging.EscalationStep": Case(
        _step,
        {"delay": datetime.timedelta(minutes=5)},
        {"delay": {"from": "P0DT00H00M00S", "to": "P0DT00H05M00S"}},
    ),
    "paging.AlertmanagerIntegration": Case(
        lambda org: _integration(org),
        {"name": "Production"},
        {"name": {"from": "", "to": "Production"}},
    ),
    "oncall.Responder": Case(
        _responder,
        {"slack_member_id": "U098ZY7XW"},
        {"slack_member_id": "personal"},
        hidden_after=("U098ZY7XW",),
    ),
    "oncall.OnCallSchedule": Case(
        _schedule,
        {"ics_text": lambda schedule: _on_call("judy-the-responder")},
        {"ics_text": "personal"},
        hidden_after=("judy-the-responder",),
    ),
    "alerting.AlertRule": Case(
        _rule, {"name": "Disk is full"}, {"name": {"from": "disk.full", "to": "Disk is full"}}
    ),
    "alerting.Silence": Case(
        _silence,
        {"comment": "database upgrade"},
        {"comment": {"from": "maintenance", "to": "database upgrade"}},
    ),
    "slo.SLO": Case(_slo, {"objective": 99.5}, {"objective": {"from": 99.9, "to": 99.5}}),
    "runbooks.Runbook": Case(
        _runbook,
        {"body": LONG_BODY},
        {
            "body": {
                "from": "# disk-full\n\n## Triage\n\nLook at the dashboard.\n",
                "to": "summary",
            }
        },
        hidden_after=("Free space on the volume",),
    ),
    "audit.RetentionOverride": Case(_retention, {"days": 60}, {"days": {"from": 30, "to": 60}}),
}


def _check_event(event: AuditEvent, obj: Audited, action: str, chain: int) -> None:
    assert event.action == action
    assert event.object_type == obj._meta.label_lower
    assert event.object_id == str(obj.pk)
    assert event.object_label == obj.audit_label()[:200]
    assert (event.chain, event.organization_id) == (chain, chain)
    assert event.actor == "system:console"  # no request, no task: the console acts


@pytest.mark.parametrize("label", sorted(CASES))
def test_create_update_delete_each_record_one_event(label, org):
    case = CASES[label]
    obj, hidden = case.make(org)
    model = type(obj)
    assert model._meta.label == label
    chain = obj.pk if case.own_chain else org.pk
    pk = obj.pk

    [created] = events_of(obj)
    _check_event(created, obj, case.created_action, chain)
    assert set(case.diff) <= set(created.diff), "a creation names every field it sets"
    assert all("from" not in entry for entry in created.diff.values())

    obj = model.objects.get(pk=pk)  # as an edit starts: from the stored row
    for name, value in case.changes.items():
        setattr(obj, name, value(obj) if callable(value) else value)
    obj.save()

    [_, updated] = events_of(obj)
    _check_event(updated, obj, "updated", chain)
    [(name, expected)] = case.diff.items()
    assert list(updated.diff) == [name]
    if expected in ("secret", "personal"):
        assert updated.diff[name] == {expected: True, "changed": True}
    elif expected.get("to") == "summary":
        # Long text: its length and a digest, never the text.
        assert updated.diff[name]["from"] == expected["from"]
        assert set(updated.diff[name]["to"]) == {"summary", "sha256"}
        assert updated.diff[name]["to"]["summary"].endswith(" characters")
    else:
        assert updated.diff == case.diff

    label_before = obj.audit_label()
    obj.delete()

    [_, _, deleted] = events_of(obj, pk)
    assert deleted.action == "deleted"
    assert (deleted.object_id, deleted.object_label) == (str(pk), label_before[:200])
    assert (deleted.chain, deleted.organization_id) == (chain, chain)
    assert name in deleted.diff
    assert all("to" not in entry for entry in deleted.diff.values())

    text = trail_text()
    for value in (*hidden, *case.hidden_after):
        assert value not in text, f"{value!r} is in the audit trail"


def test_the_trail_names_people_by_pseudonym_only(org):
    user = make_user("ursula", first_name="Ursula", last_name="Quill")
    Membership.objects.create(organization=org, user=user, role=Role.VIEWER)
    make_silence(org, created_by=user)

    pseudonym = Pseudonym.objects.get(user=user).value
    [membership] = AuditEvent.objects.filter(object_type="catalog.membership")
    assert membership.diff["user_id"] == {"to": pseudonym}
    [silence] = AuditEvent.objects.filter(object_type="alerting.silence")
    assert silence.diff["created_by_id"] == {"to": pseudonym}
    text = trail_text()
    for value in ("ursula", "Ursula", "Quill"):
        assert value not in text


# --- channel configurations: which key changed, never a secret or an address ----------

ROUTING_KEY = "abcdefghijklmnopqrstuvwxyz012345"
OTHER_ROUTING_KEY = "ZYXWVUTSRQPONMLKJIHGFEDCBA987654"


@pytest.mark.parametrize(
    ("kind", "raw", "update", "diff", "hidden"),
    [
        (
            "email",
            {"to": ["alice@example.com"]},
            {"to": ["bob@example.com", "carol@example.com"]},
            {"config.to": {"personal": True, "changed": True}},
            ("alice@", "bob@", "carol@", "example.com"),
        ),
        (
            "slack",
            {"url": "https://hooks.slack.com/services/T00/B00/slack-secret-one"},
            {"url": "https://hooks.slack.com/services/T00/B00/slack-secret-two"},
            {"config.url": {"secret": True, "changed": True}},
            ("slack-secret-one", "slack-secret-two", "hooks.slack.com"),
        ),
        (
            "pagerduty",
            {"routing_key": ROUTING_KEY},
            {"routing_key": OTHER_ROUTING_KEY},
            {"config.routing_key": {"secret": True, "changed": True}},
            (ROUTING_KEY, OTHER_ROUTING_KEY, ROUTING_KEY[-8:], OTHER_ROUTING_KEY[-8:]),
        ),
        (
            "webhook",
            {"url": "https://hooks.example.com/in", "headers": {"X-Api-Key": "api-key-one"}},
            {"headers": {"X-Api-Key": "api-key-two"}},
            {"config.headers": {"secret": True, "changed": True}},
            ("api-key-one", "api-key-two"),
        ),
    ],
    ids=["email", "slack", "pagerduty", "webhook"],
)
def test_a_channel_diff_names_the_configuration_key_that_changed(
    org, kind, raw, update, diff, hidden
):
    channel = make_channel(org, "ops", kind, slack_hosts=(channels.SLACK_HOST,), **raw)
    stored = dict(channel.config)
    channel.config = channels.to_json(channels.merge_update(channel.settings(), update))
    channel.save()

    created, updated = events_of(channel)
    assert (created.diff["kind"], created.diff["name"]) == ({"to": kind}, {"to": "ops"})
    # Each key of the configuration named, set or not, and none of them shown.
    assert {key for key in created.diff if key.startswith("config.")} == {
        f"config.{key}" for key in stored
    }
    for key, value in stored.items():
        entry = created.diff[f"config.{key}"]
        assert set(entry) in ({"secret", "set"}, {"personal", "set"})
        assert entry["set"] is bool(value)
    assert updated.diff == diff
    text = trail_text()
    for value in hidden:
        assert value not in text


def test_a_configuration_key_no_kind_has_is_hidden_too(org):
    channel = make_channel(org, "ops", "email", to=["alice@example.com"])
    channel.config = {**channel.config, "token": "never-shown-value"}
    channel.save()

    [_, updated] = events_of(channel)
    assert updated.diff == {"config.other": {"secret": True, "changed": True}}
    assert "never-shown-value" not in trail_text()


# --- bulk writes ----------------------------------------------------------------------


def _services(org: Organization, teams: list[str]) -> list[Service]:
    return [
        Service.objects.create(organization=org, slug=f"s{i}", name=f"S{i}", team=team)
        for i, team in enumerate(teams)
    ]


def test_a_queryset_update_records_one_event_per_row_it_changed(org):
    first, second, already = _services(org, ["payments", "payments", "sre"])

    assert Service.objects.filter(organization=org).update(team="sre") == 3

    for service in (first, second):
        [_, updated] = events_of(service)
        assert updated.action == "updated"
        assert updated.diff == {"team": {"from": "payments", "to": "sre"}}
        assert (updated.chain, updated.object_label) == (org.pk, service.name)
    assert len(events_of(already)) == 1  # its creation: the update changed nothing of it


def test_a_queryset_update_with_an_expression_records_the_value_written(org):
    [service] = _services(org, ["payments"])

    Service.objects.filter(pk=service.pk).update(tier=F("tier") + 1)

    [_, updated] = events_of(service)
    assert updated.diff == {"tier": {"from": 2, "to": 3}}


def test_bulk_update_records_one_event_per_row(org):
    services = _services(org, ["a", "b"])
    for service in services:
        service.name = service.name + " renamed"

    Service.objects.bulk_update(services, ["name"])

    for service in services:
        [_, updated] = events_of(service)
        assert updated.diff == {
            "name": {"from": service.name.removesuffix(" renamed"), "to": service.name}
        }


def test_bulk_create_records_each_row(org):
    created = Service.objects.bulk_create(
        [Service(organization=org, slug=f"bulk-{i}", name=f"Bulk {i}") for i in range(3)]
    )

    for service in created:
        [event] = events_of(service)
        assert event.action == "created"
        assert event.diff["slug"] == {"to": service.slug}


@pytest.mark.parametrize(
    "options",
    [
        {"ignore_conflicts": True},
        {
            "update_conflicts": True,
            "unique_fields": ["organization", "slug"],
            "update_fields": ["name"],
        },
    ],
    ids=["ignore_conflicts", "update_conflicts"],
)
def test_bulk_create_that_skips_or_overwrites_conflicts_is_refused(org, options):
    [existing] = _services(org, ["payments"])

    with pytest.raises(AuditError, match="save the rows one by one"):
        Service.objects.bulk_create(
            [
                Service(organization=org, slug=existing.slug, name="Overwritten"),
                Service(organization=org, slug="new", name="New"),
            ],
            **options,
        )

    assert list(Service.objects.values_list("slug", "name")) == [(existing.slug, existing.name)]


# --- cascades -------------------------------------------------------------------------


def _populate(org: Organization) -> None:
    """One of every configuration an organisation can have."""
    make_source(org, "http://prom.example:9090")  # and, with it, the built-in rules
    hook = make_channel(org, "hook", "webhook", url="https://hooks.example.com/in")
    schedule = make_schedule(org)
    policy = make_policy(org, steps=[(0, [hook])])
    policy.steps.get().schedules.add(schedule)
    user = make_user("dora")
    Membership.objects.create(organization=org, user=user, role=Role.RESPONDER)
    Responder.objects.create(organization=org, user=user)
    _service(org)
    ApiToken.issue(org, ApiToken.Scope.WRITE, "ci")
    make_integration(org)
    make_job(org)
    make_slo(org, service=Service.objects.get(organization=org, slug="billing"))
    make_runbook(org, "disk-full")
    make_silence(org)
    _retention(org)
    make_rule(org, "disk.full", escalation_policy=policy)


def _audited_rows(org: Organization) -> set[tuple[str, str]]:
    rows = set()
    for model in audited_models():
        lookup = model.audit.organization
        for pk in model._base_manager.filter(**{lookup: org.pk}).values_list("pk", flat=True):
            rows.add((model._meta.label_lower, str(pk)))
    return rows


def test_deleting_an_organisation_records_the_deletion_of_everything_it_had(org):
    _populate(org)
    rows = _audited_rows(org)
    assert {object_type for object_type, _ in rows} == {
        m._meta.label_lower for m in audited_models()
    }, "the organisation has one of every configuration"

    # What reads a source or runs on a policy protects it: gone first, as the admin asks.
    for protecting in (AlertRule, SLO, JobMonitor):
        protecting.objects.filter(organization=org).delete()
    chain = org.pk
    org.delete()

    deleted = set(
        AuditEvent.objects.filter(action="deleted").values_list("object_type", "object_id")
    )
    assert rows <= deleted, f"deletions not recorded: {sorted(rows - deleted)}"
    chains = AuditEvent.objects.filter(action="deleted").values_list("chain", flat=True)
    assert set(chains) == {chain}


@pytest.mark.django_db(transaction=True)
def test_deleting_a_user_records_the_end_of_their_memberships():
    # Committed: the deletions' events name the user by a pseudonym that must still be
    # theirs when the cascade reaches them, and no pseudonym may outlive its user.
    org = Organization.objects.create(slug="acme", name="Acme")
    user = make_user("eve_quinn")
    membership = Membership.objects.create(organization=org, user=user, role=Role.VIEWER)
    responder = Responder.objects.create(organization=org, user=user)
    pseudonym = Pseudonym.objects.get(user=user).value

    user.delete()

    for obj in (membership, responder):
        created, deleted = events_of(obj)
        assert (created.action, deleted.action) == ("created", "deleted")
        assert deleted.diff["user_id"] == {"from": pseudonym}
    assert not Pseudonym.objects.exists()
    assert "eve_quinn" not in trail_text()


def test_an_audited_update_keeps_the_callers_conditions(org):
    rule = make_rule(org, "compare.and.set", name="before")

    # A compare-and-set whose condition no longer holds changes nothing, audited or not.
    changed = AlertRule.objects.filter(pk=rule.pk, name="someone else's").update(name="mine")

    assert changed == 0
    rule.refresh_from_db()
    assert rule.name == "before"
    assert [event.action for event in events_of(rule)] == ["created"]


def test_a_reference_cleared_by_a_deletion_is_recorded(org):
    runbook = make_runbook(org, "disk-full")
    rule = make_rule(org, "disk.full", runbook=runbook)

    runbook_id = runbook.pk
    runbook.delete()

    [_, cleared] = events_of(rule)
    assert cleared.diff == {"runbook_id": {"from": runbook_id, "to": None}}
    rule.refresh_from_db()
    assert rule.runbook_id is None


# --- many-to-many ---------------------------------------------------------------------


def test_the_channels_and_schedules_of_a_step_are_recorded_as_they_come_and_go(org):
    first, second, third = (
        make_channel(org, name, "webhook", url="https://hooks.example.com/in")
        for name in ("one", "two", "three")
    )
    schedule = make_schedule(org)
    step = EscalationStep.objects.create(policy=_policy_of(org), position=1)

    step.channels.add(first, second)
    step.channels.remove(first)
    third.steps.add(step)  # from the other side: still the step's change
    step.channels.clear()
    step.schedules.set([schedule])
    step.schedules.set([])

    changes = [e.diff for e in events_of(step)[1:]]
    assert changes == [
        {"channels": {"added": sorted([first.pk, second.pk])}},
        {"channels": {"removed": [first.pk]}},
        {"channels": {"added": [third.pk]}},
        {"channels": {"removed": sorted([second.pk, third.pk])}},
        {"schedules": {"added": [schedule.pk]}},
        {"schedules": {"removed": [schedule.pk]}},
    ]
    assert {(e.chain, e.action) for e in events_of(step)[1:]} == {(org.pk, "updated")}


# --- what is not an edit --------------------------------------------------------------


@pytest.mark.parametrize("label", sorted(CASES))
def test_saving_what_did_not_change_records_nothing(label, org):
    obj, _ = CASES[label].make(org)
    before = AuditEvent.objects.count()

    type(obj).objects.get(pk=obj.pk).save()

    assert AuditEvent.objects.count() == before


def _raise_version(org: Organization) -> Audited:
    policy = _policy_of(org)
    EscalationPolicy.objects.filter(pk=policy.pk).update(version=F("version") + 1)
    return policy


def _touch_token(org: Organization) -> Audited:
    token, _ = ApiToken.issue(org, ApiToken.Scope.READ)
    token.touch()
    token.last_used_at = timezone.now()
    token.save(update_fields=["last_used_at"])
    return token


def _verify_rule(org: Organization) -> Audited:
    rule = make_rule(org, "unverified", verification=AlertRule.Verification.UNVERIFIED)
    AlertRule.objects.filter(pk=rule.pk).update(
        verification=AlertRule.Verification.VERIFIED,
        verification_note="Checked by its first successful evaluation.",
    )
    return rule


def _sync_bookkeeping(org: Organization) -> Audited:
    runbook = make_runbook(org, "synced")
    Runbook.objects.filter(pk=runbook.pk).update(synced_digest="0" * 64, source_path="x.md")
    return runbook


@pytest.mark.parametrize(
    "write",
    [_raise_version, _touch_token, _verify_rule, _sync_bookkeeping],
    ids=["policy-version", "token-last-use", "rule-verified", "runbook-synced"],
)
def test_state_kept_on_a_configuration_row_is_quiet(org, write):
    obj = write(org)

    assert [e.action for e in events_of(obj)] in (["created"], ["token.created"])


def test_a_policy_edit_shows_no_version_in_its_diff(org):
    policy = _policy_of(org)
    EscalationPolicy.objects.filter(pk=policy.pk).update(version=F("version") + 1)
    policy.name = "Renamed"
    policy.version = 7
    policy.save()

    [_, updated] = events_of(policy)
    assert updated.diff == {"name": {"from": "on-call", "to": "Renamed"}}


# --- who: the console, a task, a request's user or token --------------------------------


def test_a_management_command_acts_as_the_console():
    call_command("create_organization", "initech", name="Initech", stdout=None)
    organization = Organization.objects.get(slug="initech")
    call_command("create_organization", "initech", name="Initech Corp", stdout=None)

    created, renamed = events_of(organization)
    assert (created.action, renamed.action) == ("created", "updated")
    assert renamed.diff == {"name": {"from": "Initech", "to": "Initech Corp"}}
    actors = set(AuditEvent.objects.filter(chain=organization.pk).values_list("actor", flat=True))
    assert actors == {"system:console"}


def test_a_task_acts_as_itself(org, member):
    from controlplane.oncall.tasks import synchronize_due

    alice = member(org, Role.RESPONDER, username="alice")
    yesterday = (timezone.now() - datetime.timedelta(days=1)).strftime("%Y%m%d")
    make_schedule(org, ics_text=rotation("UTC", ["alice"], yesterday, "090000", 1).decode())
    assert not Responder.objects.filter(user=alice).exists()

    synchronize_due.apply().get()

    responder = Responder.objects.get(organization=org, user=alice)
    [event] = events_of(responder)
    assert (event.action, event.actor, event.chain) == (
        "created",
        "system:calendar.synchronize",
        org.pk,
    )
    assert event.diff["user_id"] == {"to": Pseudonym.objects.get(user=alice).value}


def test_an_admin_edit_is_made_by_the_signed_in_user(client, member, org):
    manager = member(org, Role.MANAGER)
    client.force_login(manager)
    hook, pager = (
        make_channel(org, name, "webhook", url="https://hooks.example.com/in")
        for name in ("hook", "pager")
    )
    policy = make_policy(org, "ops", steps=[(0, [hook])])
    step = policy.steps.get()

    response = client.post(
        f"/admin/paging/escalationpolicy/{policy.pk}/change/",
        {
            "organization": org.pk,
            "slug": "ops",
            "name": "Ops renamed",
            "repeat": 0,
            "steps-TOTAL_FORMS": 1,
            "steps-INITIAL_FORMS": 1,
            "steps-0-id": step.pk,
            "steps-0-policy": policy.pk,
            "steps-0-position": 0,
            "steps-0-delay": "0",
            "steps-0-channels": [hook.pk, pager.pk],
        },
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    policy.refresh_from_db()
    assert policy.version == 2  # raised, and not recorded: a counter of the edits
    [_, renamed] = events_of(policy)
    assert renamed.diff == {"name": {"from": "ops", "to": "Ops renamed"}}
    [_, _, linked] = events_of(step)
    assert linked.diff == {"channels": {"added": [pager.pk]}}
    actor = f"user:{Pseudonym.objects.get(user=manager).value}"
    assert {renamed.actor, linked.actor} == {actor}
    assert renamed.request_id
    assert renamed.request_id == linked.request_id


def test_an_api_edit_is_made_by_the_token_and_records_the_steps_channels(api, org):
    token, plaintext = ApiToken.issue(org, ApiToken.Scope.WRITE, "deployer")
    for name in ("mail", "pager"):
        make_channel(org, name, "email", to=[f"{name}@example.com"])
    writer = api(plaintext)
    url = "/api/v1/escalation-policies/"

    created = writer.post(
        url,
        {"slug": "ops", "name": "Ops", "steps": [{"delay": "0s", "channels": ["mail"]}]},
        format="json",
    )
    changed = writer.patch(
        f"{url}ops/", {"steps": [{"delay": "5m", "channels": ["mail", "pager"]}]}, format="json"
    )

    assert (created.status_code, changed.status_code) == (201, 200), changed.json()
    policy = EscalationPolicy.objects.get(slug="ops")
    mail, pager = (NotificationChannel.objects.get(name=n) for n in ("mail", "pager"))
    steps = AuditEvent.objects.filter(object_type="paging.escalationstep").order_by("id")
    described = [(e.action, e.diff.get("delay", e.diff.get("channels"))) for e in steps]
    assert described == [
        ("created", {"to": "P0DT00H00M00S"}),
        ("updated", {"added": [mail.pk]}),
        ("deleted", {"from": "P0DT00H00M00S"}),
        ("created", {"to": "P0DT00H05M00S"}),
        ("updated", {"added": sorted([mail.pk, pager.pk])}),
    ]
    policies = list(events_of(policy))
    assert [e.action for e in policies] == ["created"]  # the version raised: no edit
    for written in [*steps, *policies]:
        assert written.actor == f"token:{token.pk}"
        assert written.request_id
