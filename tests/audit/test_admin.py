"""The audit trail in the admin: read-only for everyone, for managers of the organisation;
actors by username while they can be named, objects linked while they exist, the diff
as a table; an attempt to edit or delete an event refused and recorded. And the trail of
one rule edited in the admin and through the API, side by side (issue 14, item 6)."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.test import RequestFactory
from django.utils import timezone

from controlplane.alerting.models import AlertRule
from controlplane.audit import reading, recorder
from controlplane.audit.models import AuditEvent, Pseudonym
from controlplane.catalog.actors import Actor
from controlplane.catalog.models import ApiToken, MetricSource, Role, Service
from tests.audit.helpers import events_of, record_some
from tests.factories import make_rule, make_source, make_user

pytestmark = pytest.mark.django_db

EVENTS = "/admin/audit/auditevent/"
RULES = "/admin/alerting/alertrule/"


@pytest.fixture
def manager(client, member, org):
    user = member(org, Role.MANAGER)
    client.force_login(user)
    client.user = user
    return client


def listed(client, query: str = "") -> list[AuditEvent]:
    response = client.get(f"{EVENTS}?{query}")
    assert response.status_code == 200, response
    return list(response.context["cl"].result_list)


def date_choice(client, title: str) -> str:
    """The query string of one of the date filter's choices, as its link has it."""
    changelist = client.get(EVENTS).context["cl"]
    for choice in changelist.filter_specs[3].choices(changelist):
        if choice["display"] == title:
            return choice["query_string"].lstrip("?")
    raise AssertionError(f"no date choice {title!r}")


def pseudonym(user) -> str:
    return Pseudonym.objects.get(user=user).value


def rule_form(client, rule: AlertRule, **changes) -> dict:
    """The rule's change form as the admin fills it, with `changes` typed in."""
    form = client.get(f"{RULES}{rule.pk}/change/").context["adminform"].form
    data = {name: form[name].value() for name in form.fields}
    data.update(changes)
    return {
        name: ("" if value is None else value) for name, value in data.items() if value is not False
    }


# --- who reads what ---------------------------------------------------------------------


def test_a_manager_reads_the_trail_of_their_organisation_and_no_other(manager, org, other_org):
    make_rule(org, "ours.rule")
    make_rule(other_org, "theirs.rule")

    shown = listed(manager)
    page = manager.get(EVENTS).content.decode()

    assert shown
    assert {event.organization_id for event in shown} == {org.pk}
    assert any(event.object_label == "ours.rule" for event in shown)
    assert "theirs.rule" not in page
    assert other_org.slug not in page
    theirs = AuditEvent.objects.filter(organization=other_org).first()
    assert manager.get(f"{EVENTS}{theirs.pk}/change/").status_code == 302  # "not found"


@pytest.mark.parametrize("role", [Role.RESPONDER, Role.VIEWER])
def test_responders_and_viewers_do_not_read_the_trail(client, member, org, role):
    make_rule(org, "ours.rule")
    client.force_login(member(org, role))
    event = AuditEvent.objects.filter(organization=org).first()

    assert client.get(EVENTS).status_code == 403
    assert client.get(f"{EVENTS}{event.pk}/change/").status_code == 403
    assert "/admin/audit/" not in client.get("/admin/").content.decode()


def test_a_superuser_reads_every_chain_even_events_of_no_organisation(client, org, other_org):
    client.force_login(make_user("root", is_superuser=True))
    record_some(None, 1)
    make_rule(other_org, "theirs.rule")

    shown = listed(client)

    assert {event.organization_id for event in shown} >= {org.pk, other_org.pk, None}


def test_nobody_may_add_change_or_delete_an_event_superusers_included(org, member):
    model_admin = admin.site._registry[AuditEvent]
    event = record_some(org, 1)[0]
    for user in (member(org, Role.MANAGER), make_user("root", is_superuser=True)):
        request = RequestFactory().get(EVENTS)
        request.user = user

        assert model_admin.has_view_permission(request, event)
        assert not model_admin.has_add_permission(request)
        assert not model_admin.has_change_permission(request, event)
        assert not model_admin.has_delete_permission(request, event)


@pytest.mark.parametrize(
    ("page", "attempt"),
    [("change/", "changed"), ("delete/", "deleted")],
)
def test_a_post_to_change_or_delete_an_event_is_refused_and_recorded(
    client, org, member, page, attempt
):
    user = make_user("root", is_superuser=True)
    client.force_login(user)
    event = record_some(org, 1)[0]
    before = AuditEvent.objects.filter(pk=event.pk).values().get()

    response = client.post(
        f"{EVENTS}{event.pk}/{page}",
        {"post": "yes", "action": "forged", "object_label": "forged"},
        HTTP_X_REQUEST_ID="req-tamper-0001",
    )

    assert response.status_code == 403
    assert AuditEvent.objects.filter(pk=event.pk).values().get() == before
    refused = AuditEvent.objects.get(action=reading.REFUSED)
    assert refused.object_type == "audit.auditevent"
    assert refused.object_id == str(event.pk)
    assert refused.organization_id == org.pk  # in the chain of the event it aimed at
    assert refused.diff == {"attempt": attempt}
    assert refused.actor == f"user:{pseudonym(user)}"
    assert refused.request_id == "req-tamper-0001"


def test_a_post_to_add_an_event_is_refused_and_recorded(manager, org):
    count = AuditEvent.objects.count()

    response = manager.post(f"{EVENTS}add/", {"action": "forged", "object_type": "x"})

    assert response.status_code == 403
    assert AuditEvent.objects.count() == count + 1
    refused = AuditEvent.objects.latest("id")
    assert (refused.action, refused.diff) == (reading.REFUSED, {"attempt": "added"})
    assert not AuditEvent.objects.filter(action="forged").exists()


def test_the_change_page_has_no_form_to_submit(manager, org):
    event = record_some(org, 1)[0]

    page = manager.get(f"{EVENTS}{event.pk}/change/").content.decode()

    assert 'name="_save"' not in page
    assert "deletelink" not in page


# --- how the list reads -----------------------------------------------------------------


def test_the_actor_is_the_username_while_linked_else_the_pseudonym_said_erased(
    manager, org, member
):
    colleague = member(org, Role.MANAGER, username="colleague")
    make_rule(org, "by.me", name="one")
    mine = recorder.record(
        "updated", organization_id=org.pk, object_type="x.y", actor=Actor.user(manager.user)
    )
    theirs = recorder.record(
        "updated", organization_id=org.pk, object_type="x.y", actor=Actor.user(colleague)
    )
    gone = pseudonym(colleague)
    Pseudonym.objects.filter(user=colleague).delete()  # what erasure does

    shown = {event.pk: event.actor_text for event in listed(manager, "object_type=x.y")}

    assert shown[mine.pk] == manager.user.username
    assert shown[theirs.pk] == f"{gone} (erased)"
    assert "colleague" not in manager.get(f"{EVENTS}?object_type=x.y").content.decode()


def test_the_object_links_to_its_page_while_it_exists(manager, org):
    service = Service.objects.create(organization=org, slug="checkout", name="Checkout")
    created = events_of(service)[0]
    service_page = f"/admin/catalog/service/{service.pk}/change/"

    assert (
        manager.get(f"{EVENTS}?object_type=catalog.service")
        .content.decode()
        .count(f'href="{service_page}"')
        == 1
    )
    service.delete()
    page = manager.get(f"{EVENTS}?object_type=catalog.service").content.decode()

    assert f'href="{service_page}"' not in page
    assert {event.pk for event in listed(manager, "object_type=catalog.service")} >= {created.pk}
    assert "Service Checkout" in page  # type and label, the object gone


def test_the_trace_links_through_the_trace_url_template(manager, org, settings):
    rule = make_rule(org, "traced")
    edit = manager.post(f"{RULES}{rule.pk}/change/", rule_form(manager, rule, name="edited"))
    trace = edit["X-Trace-Id"]
    settings.TRACE_URL_TEMPLATE = "https://tempo.example/trace/{trace_id}"

    linked = manager.get(EVENTS).content.decode()
    settings.TRACE_URL_TEMPLATE = ""
    plain = manager.get(EVENTS).content.decode()

    assert events_of(rule)[-1].trace_id == trace
    assert f'href="https://tempo.example/trace/{trace}"' in linked
    assert trace in plain
    assert "tempo.example" not in plain


def test_filters_by_actor_action_object_type_and_date(manager, org, write_token, api):
    token = ApiToken.objects.get(name="writer")
    rule = make_rule(org, "filtered")
    api(write_token).patch(f"/api/v1/rules/{rule.key}/", {"name": "by token"}, format="json")
    manager.post(f"{RULES}{rule.pk}/change/", rule_form(manager, rule, name="by hand"))
    recent = record_some(org, 1)[0]
    long_ago = timezone.now() - timedelta(days=400)
    ancient = recorder.record("updated", organization_id=org.pk, object_type="x.y", at=long_ago)

    by_token = listed(manager, f"actor=token:{token.pk}")
    by_people = listed(manager, "actor=user")
    updates = listed(manager, "action=updated&object_type=alerting.alertrule")
    past_week = {e.pk for e in listed(manager, date_choice(manager, "Past 7 days"))}

    assert [e.diff["name"]["to"] for e in by_token] == ["by token"]
    assert {e.actor for e in by_people} == {f"user:{pseudonym(manager.user)}"}
    assert [e.diff["name"]["to"] for e in updates] == ["by hand", "by token"]
    assert recent.pk in past_week
    assert ancient.pk not in past_week
    filters = manager.get(EVENTS).context["cl"].filter_specs
    actors = dict(filters[0].lookup_choices)
    assert actors[f"user:{pseudonym(manager.user)}"] == manager.user.username
    assert f"token:{token.pk}" in actors
    assert {"created", "updated"} <= {value for value, _ in filters[1].lookup_choices}
    assert ("alerting.alertrule", "Alert rule") in filters[2].lookup_choices


def test_search_by_object_label_id_request_id_and_trace_id(manager, org):
    rule = make_rule(org, "needle.rule")
    response = manager.post(
        f"{RULES}{rule.pk}/change/",
        rule_form(manager, rule, name="found"),
        HTTP_X_REQUEST_ID="req-needle-0001",
    )
    edit = events_of(rule)[-1]
    record_some(org, 3)

    assert {e.object_label for e in listed(manager, "q=needle")} == {"needle.rule"}
    assert [e.pk for e in listed(manager, "q=req-needle-0001")] == [edit.pk]
    assert [e.pk for e in listed(manager, f"q={response['X-Trace-Id']}")] == [edit.pk]
    assert {e.object_label for e in listed(manager, f"q={rule.pk}")} >= {"needle.rule"}


def test_the_detail_page_shows_the_diff_as_a_table_and_the_chain(manager, org):
    from controlplane.audit import sealing

    event = recorder.record(
        "updated",
        organization_id=org.pk,
        object_type="runbooks.runbook",
        object_id=7,
        label="disk-full",
        diff={
            "title": {"from": "Disk full", "to": "Disk <b>full</b>"},
            "body": {"from": {"summary": "1,204 characters", "sha256": "ab12cd34ef567890"},
                     "to": {"summary": "1,310 characters", "sha256": "0011223344556677"}},
            "interval": {"from": "P0DT00H01M00S", "to": "P0DT00H05M00S"},
            "token": {"secret": True, "changed": True},
            "email": {"personal": True, "changed": True},
            "responders": {"added": [3], "removed": [1, 2]},
        },
    )  # fmt: skip
    sealing.seal(org.pk)
    event.refresh_from_db()

    page = manager.get(f"{EVENTS}{event.pk}/change/").content.decode()
    table = re.search(r'<table class="audit-diff">.*?</table>', page, re.S).group(0)
    cells = [
        re.sub(r"<[^>]+>", "", row).split() for row in re.findall(r"<tr>(.*?)</tr>", table, re.S)
    ]

    assert "Disk &lt;b&gt;full&lt;/b&gt;" in table  # escaped, never rendered
    assert ["interval", "1m", "5m"] in cells
    assert "1,204 characters (sha256 ab12cd34ef567890…)" in table
    assert "secret changed" in table
    assert "personal data (not recorded) changed" in table
    assert "added 3; removed 1, 2" in table
    assert event.hash
    assert event.hash in page
    assert event.prev_hash in page
    assert f'<div class="readonly">{event.seq}</div>' in page


def test_the_list_reads_a_page_of_fifty_events_in_a_bounded_number_of_queries(
    manager, org, member, django_assert_max_num_queries
):
    people = [member(org, Role.MANAGER, username=f"person-{n}") for n in range(10)]
    sources = [make_source(org, f"http://prom-{n}.example:9090", f"prom-{n}") for n in range(5)]
    services = [
        Service.objects.create(organization=org, slug=f"s{n}", name=f"S{n}") for n in range(5)
    ]
    objects = sources + services
    for n in range(50):
        target = objects[n % len(objects)]
        recorder.record(
            "updated",
            organization_id=org.pk,
            object_type=recorder.object_type_of(type(target)),
            object_id=target.pk,
            label=str(target),
            actor=Actor.user(people[n % len(people)]),
        )

    with django_assert_max_num_queries(20):
        response = manager.get(EVENTS)

    rows = response.context["cl"].result_list
    assert len(rows) == 50
    assert {row.actor_text for row in rows} == {person.username for person in people}
    assert sum(bool(row.object_url) for row in rows) == 50


# --- LogEntry is not written; the index reads the trail -------------------------------------


def test_an_admin_edit_writes_no_log_entry_and_the_index_shows_the_trail(manager, org):
    rule = make_rule(org, "indexed")

    manager.post(f"{RULES}{rule.pk}/change/", rule_form(manager, rule, name="renamed for index"))
    index = manager.get("/admin/").content.decode()

    assert LogEntry.objects.count() == 0
    assert "Latest in the audit trail" in index
    assert f"/admin/audit/auditevent/{events_of(rule)[-1].pk}/change/" in index


def test_the_index_shows_no_trail_to_a_viewer(client, member, org):
    make_rule(org, "indexed")
    client.force_login(member(org, Role.VIEWER))

    index = client.get("/admin/").content.decode()

    assert "Latest in the audit trail" not in index
    assert "indexed" not in index


# --- issue 14, item 6: one rule edited in the admin and through the API ------------------


def test_the_trail_of_an_admin_edit_and_an_api_edit_of_the_same_rule(
    manager, org, api, write_token
):
    rule = make_rule(org, "queue.depth", name="Queue is deep", severity="warning")
    token = ApiToken.objects.get(name="writer")

    by_hand = manager.post(
        f"{RULES}{rule.pk}/change/", rule_form(manager, rule, name="Queue is very deep")
    )
    by_token = api(write_token).patch(
        f"/api/v1/rules/{rule.key}/", {"severity": "critical"}, format="json"
    )

    assert (by_hand.status_code, by_token.status_code) == (302, 200)
    admin_edit, api_edit = events_of(rule)[-2:]
    assert admin_edit.action == api_edit.action == "updated"
    assert admin_edit.diff["name"] == {"from": "Queue is deep", "to": "Queue is very deep"}
    assert "severity" not in admin_edit.diff
    assert api_edit.diff == {"severity": {"from": "warning", "to": "critical"}}
    assert admin_edit.actor == f"user:{pseudonym(manager.user)}"
    assert api_edit.actor == f"token:{token.pk}"
    assert admin_edit.request_id == by_hand["X-Request-Id"]
    assert api_edit.request_id == by_token["X-Request-Id"]
    assert admin_edit.trace_id == by_hand["X-Trace-Id"]
    assert api_edit.trace_id == by_token["X-Trace-Id"]
    assert admin_edit.request_id != api_edit.request_id
    assert re.fullmatch(r"[0-9a-f]{32}", admin_edit.trace_id)
    assert admin_edit.organization_id == api_edit.organization_id == org.pk
    # No name, no address: the person is their pseudonym.
    assert manager.user.username not in json.dumps([admin_edit.diff, admin_edit.actor])
    assert manager.user.email not in json.dumps([admin_edit.diff, admin_edit.actor])

    source = make_source(
        org, "http://prometheus.example:9090", "main", auth_header="Bearer old-s3cret"
    )
    secret = api(write_token).patch(
        f"/api/v1/sources/{source.name}/", {"auth_header": "Bearer new-s3cret"}, format="json"
    )

    assert secret.status_code == 200, secret.content
    assert MetricSource.objects.get(pk=source.pk).auth_header == "Bearer new-s3cret"
    masked = events_of(source)[-1]
    assert masked.diff == {"auth_header": {"secret": True, "changed": True}}
    assert masked.request_id == secret["X-Request-Id"]
    shown = api(write_token).get(
        f"/api/v1/audit/?object_type=catalog.metricsource&object_id={source.pk}"
    )
    page = manager.get(f"{EVENTS}{masked.pk}/change/").content.decode()
    for where in (json.dumps(masked.diff), shown.content.decode(), page):
        assert "s3cret" not in where
    assert "secret changed" in page
