"""Each object's admin page links to its own history, which is its audit trail; Django's
LogEntry is no longer written, and what it used to record of objects that are not
configuration (accounts, groups) is in the trail, without anyone's name."""

from __future__ import annotations

import json

import pytest
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group

from controlplane.audit import history
from controlplane.audit.models import AuditEvent, Pseudonym
from controlplane.catalog.models import Role, Service
from tests.audit.helpers import events_of
from tests.factories import make_alert, make_rule, make_runbook, make_user

pytestmark = pytest.mark.django_db

EVENTS = "/admin/audit/auditevent/"
RULES = "/admin/alerting/alertrule/"


@pytest.fixture
def manager(client, member, org):
    client.force_login(member(org, Role.MANAGER))
    return client


@pytest.fixture
def superuser(client):
    user = make_user("root", is_superuser=True)
    client.force_login(user)
    client.user = user
    return client


def landing(client, url: str):
    """Follow an object's History link; the page it lands on."""
    response = client.get(url)
    assert response.status_code == 302, response
    page = client.get(response["Location"])
    assert page.status_code == 200
    return response["Location"], page


def test_a_rules_history_link_lands_on_its_events_and_no_others(manager, org):
    rule = make_rule(org, "queue.depth")
    rule.name = "renamed"
    rule.save()
    make_rule(org, "other.rule")
    page = manager.get(f"{RULES}{rule.pk}/change/").content.decode()
    link = f"{RULES}{rule.pk}/history/"

    location, events = landing(manager, link)

    assert f'href="{link}"' in page
    assert location == f"{EVENTS}?object_type=alerting.alertrule&object_id={rule.pk}"
    shown = [event.pk for event in events.context["cl"].result_list]
    assert shown == [event.pk for event in reversed(events_of(rule))]  # newest first
    assert [e.action for e in events.context["cl"].result_list] == ["updated", "created"]
    content = events.content.decode()
    assert f"History of alert rule #{rule.pk}" in content
    assert f'href="{RULES}{rule.pk}/change/"' in content  # back to the rule
    assert "other.rule" not in content


def test_the_history_of_an_alert_and_of_an_organisation_are_theirs(manager, org):
    alert = make_alert(make_rule(org, "fires"))
    service = Service.objects.create(organization=org, slug="checkout", name="Checkout")

    for model, obj in ((type(alert), alert), (type(org), org), (Service, service)):
        location, _ = landing(
            manager, f"/admin/{model._meta.app_label}/{model._meta.model_name}/{obj.pk}/history/"
        )
        assert location == history.history_url(model, obj.pk)


@pytest.mark.parametrize("role", [Role.RESPONDER, Role.VIEWER])
def test_who_may_not_read_the_trail_sees_no_history_link_and_is_refused_it(
    client, member, org, role
):
    rule = make_rule(org, "queue.depth")
    client.force_login(member(org, role))

    page = client.get(f"{RULES}{rule.pk}/change/")

    assert page.status_code == 200
    assert "historylink" not in page.content.decode()
    assert client.get(f"{RULES}{rule.pk}/history/").status_code == 403


def test_the_history_of_another_organisations_object_is_not_found(manager, other_org):
    theirs = make_rule(other_org, "theirs")

    response = manager.get(f"{RULES}{theirs.pk}/history/")

    assert (response.status_code, response["Location"]) == (302, "/admin/")


def test_the_history_of_a_shared_runbook_is_for_superusers(client, member, org, superuser):
    runbook = make_runbook(None, "shared-runbook", title="Shared")
    link = f"/admin/runbooks/runbook/{runbook.pk}/history/"

    location, page = landing(superuser, link)
    client.force_login(member(org, Role.MANAGER))

    assert {e.pk for e in page.context["cl"].result_list} == {e.pk for e in events_of(runbook)}
    assert location == history.history_url(type(runbook), runbook.pk)
    assert client.get(link).status_code == 403


def test_every_admin_of_the_site_has_the_trail_as_history():
    without = [
        model._meta.label
        for model, model_admin in admin.site._registry.items()
        if not isinstance(model_admin, history.TrailHistory)
    ]

    assert without == []


# --- instead of LogEntry ----------------------------------------------------------------


def test_a_group_added_renamed_and_deleted_in_the_admin_is_in_the_trail_not_in_log_entries(
    superuser,
):
    added = superuser.post("/admin/auth/group/add/", {"name": "leads"})
    group = Group.objects.get(name="leads")
    group_id = str(group.pk)
    renamed = superuser.post(f"/admin/auth/group/{group.pk}/change/", {"name": "on-call leads"})
    deleted = superuser.post(f"/admin/auth/group/{group.pk}/delete/", {"post": "yes"})

    assert [added.status_code, renamed.status_code, deleted.status_code] == [302, 302, 302]
    assert not Group.objects.filter(pk=group_id).exists()
    events = list(
        AuditEvent.objects.filter(object_type="auth.group", object_id=group_id).order_by("id")
    )
    assert [e.action for e in events] == ["created", "updated", "deleted"]
    assert [e.object_label for e in events] == ["leads", "on-call leads", "on-call leads"]
    assert events[1].diff == {"Name": {"changed": True}}
    assert {e.organization_id for e in events} == {None}  # chain 0: superusers'
    assert {e.actor for e in events} == {f"user:{Pseudonym.objects.get(user=superuser.user)}"}
    assert LogEntry.objects.count() == 0


def test_groups_deleted_together_by_the_admin_action_are_each_in_the_trail(superuser):
    groups = [Group.objects.create(name=name) for name in ("first", "second")]

    response = superuser.post(
        "/admin/auth/group/",
        {"action": "delete_selected", "_selected_action": [g.pk for g in groups], "post": "yes"},
    )

    assert response.status_code == 302
    assert not Group.objects.exists()
    deleted = AuditEvent.objects.filter(object_type="auth.group", action="deleted")
    assert sorted(deleted.values_list("object_label", flat=True)) == ["first", "second"]
    assert LogEntry.objects.count() == 0


def test_a_password_set_in_the_admin_is_recorded_by_pseudonym_never_by_name(superuser):
    person = make_user("jane.doe")  # jane.doe@example.com

    response = superuser.post(
        f"/admin/auth/user/{person.pk}/password/",
        {"password1": "another horse battery", "password2": "another horse battery",
         "usable_password": "true"},
    )  # fmt: skip

    assert response.status_code == 302
    event = AuditEvent.objects.get(object_type="auth.user", object_id=str(person.pk))
    assert event.object_label == f"user {Pseudonym.objects.get(user=person).value}"
    assert event.diff
    assert all(entry == {"changed": True} for entry in event.diff.values())
    stored = json.dumps([event.object_label, event.diff, event.actor])
    assert "jane" not in stored
    assert LogEntry.objects.count() == 0
    _location, page = landing(superuser, f"/admin/auth/user/{person.pk}/history/")
    assert [e.pk for e in page.context["cl"].result_list] == [event.pk]


def test_an_events_own_history_lists_the_attempts_on_it(superuser, org):
    make_rule(org, "target")
    event = AuditEvent.objects.filter(organization=org).first()
    superuser.post(f"{EVENTS}{event.pk}/delete/", {"post": "yes"})

    _location, page = landing(superuser, f"{EVENTS}{event.pk}/history/")

    attempts = list(page.context["cl"].result_list)
    assert [(e.action, e.diff) for e in attempts] == [("audit.refused", {"attempt": "deleted"})]
