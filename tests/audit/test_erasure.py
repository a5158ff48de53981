"""Erasing a person: nothing of them left in events, logs or tables, the trail still whole."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth import SESSION_KEY, get_user_model
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.contrib.sessions.models import Session
from django.core.management import CommandError, call_command
from django.forms import MultiWidget
from django.test import Client

from controlplane.alerting.models import AlertRule
from controlplane.audit import erasure, pseudonyms, sealing
from controlplane.audit.erasure import ErasureRefused, erase
from controlplane.audit.models import AuditEvent, Pseudonym
from controlplane.catalog.actors import Actor
from controlplane.catalog.models import ApiToken, Membership, Role
from controlplane.oncall.models import Responder
from controlplane.paging.models import Notification
from tests.audit.helpers import events_of, verify
from tests.audit.test_pseudonyms import _no_cached_pseudonyms, log_lines  # noqa: F401
from tests.factories import make_alert, make_rule, make_schedule

PASSWORD = "correct horse battery"
USERNAME = "kestrel.night77"
FIRST_NAME = "Zephyrine"
LAST_NAME = "Quackenbush"
EMAIL = "zq.private77@mailhost.example"
ADDRESS = "203.0.113.177"
PERSONAL = (USERNAME, FIRST_NAME, LAST_NAME, EMAIL, ADDRESS)


def found_in(rows: object) -> list[str]:
    """Which of the person's name, username, email or address the rows mention."""
    text = json.dumps(rows, default=str, ensure_ascii=False).lower()
    return [value for value in PERSONAL if value.lower() in text]


def make_person(**fields):
    return get_user_model().objects.create_user(
        USERNAME,
        email=EMAIL,
        password=PASSWORD,
        first_name=FIRST_NAME,
        last_name=LAST_NAME,
        is_staff=True,
        **fields,
    )


def superuser(username: str = "root.admin"):
    return get_user_model().objects.create_superuser(username, "", PASSWORD)


def admin_form(client: Client, url: str, **changes: object) -> dict:
    """The admin change form's data as the page shows it, with `changes` made."""
    form = client.get(url).context["adminform"].form
    data: dict = {}
    for name, field in form.fields.items():
        value = form[name].value()
        if isinstance(field.widget, MultiWidget):
            for number, part in enumerate(field.widget.decompress(value)):
                data[f"{name}_{number}"] = part
        elif isinstance(value, bool):
            if value:
                data[name] = "on"
        elif value is not None:
            data[name] = value
    data.update(changes)
    return data


def legacy_history(user, obj) -> None:
    LogEntry.objects.create(
        user=user,
        content_type=ContentType.objects.get_for_model(obj),
        object_id=str(obj.pk),
        object_repr=str(obj)[:200],
        action_flag=CHANGE,
        change_message=f"Changed {obj}",
    )


def sessions_of_everyone() -> list[dict]:
    return [
        {"key": session.session_key, "data": session.session_data, **session.get_decoded()}
        for session in Session.objects.all()
    ]


@pytest.fixture
def everything_logged() -> Iterator[None]:
    """Every logger at DEBUG, the most a deployment can ask (LOG_LEVEL=DEBUG)."""
    touched = [logging.getLogger(), logging.getLogger("axes")]
    levels = [logger.level for logger in touched]
    for logger in touched:
        logger.setLevel(logging.DEBUG)
    yield
    for logger, level in zip(touched, levels, strict=True):
        logger.setLevel(level)


# The issue's test ----------------------------------------------------------------------


@pytest.mark.django_db
def test_erasure_leaves_no_name_email_or_address_anywhere_and_the_trail_verifies(
    org,
    other_org,
    service,
    log_lines,  # noqa: F811
    everything_logged,
    django_capture_on_commit_callbacks,
):
    person = make_person()
    Membership.objects.create(organization=org, user=person, role=Role.MANAGER)
    Membership.objects.create(organization=other_org, user=person, role=Role.VIEWER)
    responder = Responder.objects.create(organization=org, user=person, slack_member_id="UZQ77")
    Notification.objects.create(
        organization=org,
        responder=responder,
        channel_name=f"primary: {USERNAME}",
        channel_kind="email",
        event="trigger",
        last_error=f"{USERNAME.upper()} has no email address (550 no mailbox {EMAIL})",
    )
    rule = make_rule(org, key="checkout.latency", service=service)
    alert = make_alert(rule)
    root = superuser()

    # Signs in from a distinctive address, then works.
    browser = Client(REMOTE_ADDR=ADDRESS)
    signed_in = browser.post("/accounts/login/", {"username": USERNAME, "password": PASSWORD})
    assert signed_in.status_code == 302
    rule_page = f"/admin/alerting/alertrule/{rule.pk}/change/"
    edited = browser.post(rule_page, admin_form(browser, rule_page, name="Checkout is slow"))
    assert edited.status_code == 302, edited.context["adminform"].form.errors
    patched = browser.patch(
        f"/api/v1/rules/{rule.key}/",
        json.dumps({"name": "Checkout is very slow"}),
        content_type="application/json",
    )
    assert patched.status_code == 200, patched.content
    assert browser.post(f"/alerts/{alert.pk}/acknowledge/").status_code == 302
    assert browser.get("/alerts/987654/").status_code == 404  # logged by django.request
    # Fails a login, by username and by email: Axes keeps both, with the address.
    for typed in (USERNAME, EMAIL):
        stranger = Client(REMOTE_ADDR=ADDRESS)
        failed = stranger.post("/accounts/login/", {"username": typed, "password": "wrong"})
        assert failed.status_code == 200
    # A superuser changes the person's membership, and their account.
    admin = Client()
    admin.force_login(root)
    membership = Membership.objects.get(organization=other_org, user=person)
    membership_page = f"/admin/catalog/membership/{membership.pk}/change/"
    changed = admin.post(membership_page, admin_form(admin, membership_page, role=Role.RESPONDER))
    assert changed.status_code == 302
    user_page = f"/admin/auth/user/{person.pk}/change/"
    form = admin_form(admin, user_page, last_name=f"{LAST_NAME}-Smythe")
    form.pop("password", None)
    changed = admin.post(user_page, form)
    assert changed.status_code == 302, changed.context["adminform"].form.errors
    # Django's admin history as an older release wrote it: labels are usernames.
    legacy_history(person, rule)
    legacy_history(root, membership)

    pseudonym = pseudonyms.of_user_id(person.pk)
    # What there was to find, so that finding nothing afterwards means something.
    assert {e.actor for e in events_of(AlertRule.objects.get(pk=rule.pk))} >= {f"user:{pseudonym}"}
    assert pseudonym in {line["user_id"] for line in log_lines()}
    assert set(found_in(list(AccessAttempt.objects.values()))) == {USERNAME, EMAIL, ADDRESS}
    assert found_in(list(LogEntry.objects.values())) == [USERNAME]
    assert any(s.get(SESSION_KEY) == str(person.pk) for s in sessions_of_everyone())

    out = io.StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("erase_user", USERNAME, "--yes", stdout=out)

    assert USERNAME not in out.getvalue()
    person.refresh_from_db()
    assert found_in(get_user_model().objects.filter(pk=person.pk).values()[0]) == []
    assert (person.is_active, person.is_staff, person.has_usable_password()) == (
        False,
        False,
        False,
    )
    assert found_in(list(AuditEvent.objects.values())) == []
    assert AuditEvent.objects.count() > 10
    assert found_in(log_lines()) == []
    assert found_in(sessions_of_everyone()) == []
    assert not any(s.get(SESSION_KEY) == str(person.pk) for s in sessions_of_everyone())
    for model in (AccessAttempt, AccessFailureLog, AccessLog):
        assert found_in(list(model.objects.values())) == []
    assert found_in(list(LogEntry.objects.values())) == []
    assert found_in(list(Notification.objects.values())) == []
    assert found_in(list(Membership.objects.values())) == []
    assert found_in(list(Responder.objects.values())) == []
    # The trail is whole, and its pseudonym points to nobody.
    sealing.seal_all()
    printed, problem = verify()
    assert problem is None, printed
    assert pseudonyms.names({pseudonym}) == {}
    assert not Pseudonym.objects.filter(user_id=person.pk).exists()
    # The signed-in browser is signed out: its session went, and it cannot sign in again.
    assert browser.get("/alerts/").status_code == 302
    again = Client(REMOTE_ADDR="192.0.2.1").post(
        "/accounts/login/", {"username": person.get_username(), "password": PASSWORD}
    )
    assert SESSION_KEY not in again.wsgi_request.session


# What erasure records ------------------------------------------------------------------


@pytest.fixture
def person(org, other_org):
    user = make_person()
    Membership.objects.create(organization=org, user=user, role=Role.MANAGER)
    Membership.objects.create(organization=other_org, user=user, role=Role.VIEWER)
    Responder.objects.create(organization=org, user=user)
    return user


@pytest.mark.django_db
def test_erasure_is_recorded_in_chain_zero_and_each_organisation_by_pseudonym(
    person, org, other_org
):
    root = superuser()
    pseudonym = pseudonyms.of_user_id(person.pk)
    memberships = dict(Membership.objects.filter(user=person).values_list("organization", "pk"))
    responder = Responder.objects.get(user=person)

    receipt = erase(person, Actor.user(root))

    erased = AuditEvent.objects.filter(action=erasure.ACTION).order_by("chain")
    assert [e.chain for e in erased] == [0, org.pk, other_org.pk]
    assert {(e.object_type, e.object_id, e.object_label) for e in erased} == {
        ("auth.user", str(person.pk), pseudonym)
    }
    assert {e.actor for e in erased} == {f"user:{pseudonyms.of_user_id(root.pk)}"}
    system, in_org, in_other = erased
    assert system.diff["username"] == {"personal": True, "changed": True}
    assert system.diff["email"] == {"personal": True, "changed": True}
    assert system.diff["password"] == {"secret": True, "changed": True}
    assert system.diff["is_active"] == {"from": True, "to": False}
    assert system.diff["memberships"] == {"removed": sorted(memberships.values())}
    assert in_org.diff == {
        "memberships": {"removed": [memberships[org.pk]]},
        "responders": {"removed": [responder.pk]},
    }
    assert in_other.diff == {"memberships": {"removed": [memberships[other_org.pk]]}}
    # The deletions, recorded by the models themselves, name the person by pseudonym.
    deleted = AuditEvent.objects.filter(action="deleted", object_type="catalog.membership")
    assert {e.diff["user_id"]["from"] for e in deleted} == {pseudonym}
    assert {e.actor for e in deleted} == {f"user:{pseudonyms.of_user_id(root.pk)}"}
    assert receipt.pseudonym == pseudonym
    assert receipt.events == tuple(e.pk for e in erased)
    assert (receipt.memberships, receipt.responders) == (2, 1)
    assert receipt.username.startswith(erasure.ERASED_USERNAME_PREFIX)


@pytest.mark.django_db
def test_an_erased_person_gets_no_new_pseudonym(person, org):
    token, _ = ApiToken.issue(org, ApiToken.Scope.READ, "theirs", created_by=person)
    superuser()
    erase(person)

    assert pseudonyms.of_user_id(person.pk) is None
    assert pseudonyms.actor_spec(Actor.user(person)) == f"user:{pseudonyms.ERASED}"
    token_id = token.pk
    token.delete()  # its creator is recorded, and cannot be named any more
    [deleted] = AuditEvent.objects.filter(
        object_type="catalog.apitoken", object_id=str(token_id), action="deleted"
    )
    assert deleted.diff["created_by_id"] == {"from": pseudonyms.ERASED}
    assert not Pseudonym.objects.filter(user_id=person.pk).exists()


@pytest.mark.django_db
def test_erasing_twice_is_refused(person):
    superuser()
    erase(person)

    with pytest.raises(ErasureRefused, match="already erased"):
        erase(person)


@pytest.mark.django_db
def test_the_last_active_superuser_is_not_erased(org):
    only = superuser("only.root")
    get_user_model().objects.create_superuser("retired.root", "", PASSWORD, is_active=False)

    with pytest.raises(ErasureRefused, match="last active superuser"):
        erase(only)

    only.refresh_from_db()
    assert (only.username, only.is_superuser) == ("only.root", True)
    assert not AuditEvent.objects.filter(action=erasure.ACTION).exists()
    superuser("second.root")
    erase(only)
    only.refresh_from_db()
    assert only.is_superuser is False


@pytest.mark.django_db
def test_a_refused_erasure_changes_nothing(person):
    pseudonym = pseudonyms.of_user_id(person.pk)
    person.is_superuser = True
    person.save()

    with pytest.raises(ErasureRefused):
        erase(person)

    assert pseudonyms.names({pseudonym}) == {pseudonym: USERNAME}
    assert Membership.objects.filter(user=person).count() == 2


@pytest.mark.parametrize(
    ("name", "renamed"),
    [
        ("primary: kestrel.night77", "primary: erased"),
        ("weird: a: b", "weird: erased"),
        ("x", "erased"),
    ],
)
def test_a_notification_to_a_person_is_renamed_without_them(name, renamed):
    assert erasure.renamed_notification(name) == renamed


@pytest.mark.django_db
def test_a_notification_left_by_a_responder_removed_earlier_is_renamed_too(person, org):
    schedule = make_schedule(org)
    responder, _ = Responder.objects.get_or_create(organization=org, user=person)
    row = Notification.objects.create(
        organization=org,
        responder=responder,
        schedule=schedule,
        channel_name=f"{schedule.slug}: {USERNAME}",
        channel_kind="email",
        event="trigger",
    )
    other = Notification.objects.create(
        organization=org,
        schedule=schedule,
        channel_name=f"{schedule.slug}: {USERNAME}x",
        channel_kind="email",
        event="trigger",
    )
    responder.delete()  # the row keeps the name, not the reference

    erasure.erase(person, Actor.system("test"))

    row.refresh_from_db()
    other.refresh_from_db()
    assert USERNAME not in row.channel_name
    assert other.channel_name == f"{schedule.slug}: {USERNAME}x", "someone else's is left"


def test_an_error_is_scrubbed_of_the_person_and_of_addresses():
    text = "Kestrel.Night77 has no email address; 550 <kn@example.org>: no mailbox for Zephyrine"

    scrubbed = erasure.scrubbed(text, {"kestrel.night77", "Zephyrine"})

    assert scrubbed == "erased has no email address; 550 <<email>>: no mailbox for erased"


@pytest.mark.parametrize(
    ("erased", "active_superuser", "others", "refused"),
    [
        (False, False, 0, None),
        (False, True, 1, None),
        (False, True, 0, "last active superuser"),
        (True, False, 3, "already erased"),
    ],
)
def test_what_is_refused(erased, active_superuser, others, refused):
    reason = erasure.refusal(
        erased=erased, active_superuser=active_superuser, other_active_superusers=others
    )

    assert reason is None if refused is None else refused in reason


# The command ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_command_refuses_an_unknown_username():
    with pytest.raises(CommandError, match="no user"):
        call_command("erase_user", "nobody.here", "--yes")


@pytest.mark.django_db
def test_the_command_asks_first_and_erases_nothing_unless_told_yes(person):
    superuser()
    out = io.StringIO()

    with pytest.raises(CommandError, match="Nothing erased"):
        call_command("erase_user", USERNAME, stdin=io.StringIO("no\n"), stdout=out)

    assert "cannot be undone" in out.getvalue()
    person.refresh_from_db()
    assert person.get_username() == USERNAME
    call_command("erase_user", USERNAME, stdin=io.StringIO("yes\n"), stdout=io.StringIO())
    person.refresh_from_db()
    assert erasure.is_erased(person)


@pytest.mark.django_db
def test_the_command_reports_a_refusal():
    superuser("only.root")

    with pytest.raises(CommandError, match="last active superuser"):
        call_command("erase_user", "only.root", "--yes")


# The admin action ----------------------------------------------------------------------

USERS = "/admin/auth/user/"


def action_names(response) -> set[str]:
    return {choice for choice, _ in response.context["action_form"].fields["action"].choices}


@pytest.mark.django_db
def test_a_superuser_erases_from_the_admin_after_confirming(person, client):
    root = superuser()
    client.force_login(root)
    pseudonym = pseudonyms.of_user_id(person.pk)
    chosen = {"action": "erase_personal_data", "_selected_action": [person.pk]}

    assert "erase_personal_data" in action_names(client.get(USERS))
    confirmation = client.post(USERS, chosen)

    assert confirmation.status_code == 200
    assert "cannot be undone" in confirmation.content.decode()
    person.refresh_from_db()
    assert person.get_username() == USERNAME  # nothing yet
    done = client.post(USERS, {**chosen, "post": "yes"}, follow=True)

    person.refresh_from_db()
    assert erasure.is_erased(person)
    assert pseudonyms.names({pseudonym}) == {}
    page = done.content.decode()
    assert f"User #{person.pk} erased" in page
    assert USERNAME not in page


@pytest.mark.django_db
def test_a_superuser_cannot_erase_themselves_from_the_admin(client):
    root = superuser()
    superuser("other.root")
    client.force_login(root)

    done = client.post(
        USERS,
        {"action": "erase_personal_data", "_selected_action": [root.pk], "post": "yes"},
        follow=True,
    )

    root.refresh_from_db()
    assert root.is_active
    assert root.get_username() == "root.admin"
    assert "cannot erase yourself" in done.content.decode()


@pytest.mark.django_db
def test_staff_who_may_change_users_are_not_offered_erasure(person, client):
    staff = get_user_model().objects.create_user("user.clerk", password=PASSWORD, is_staff=True)
    staff.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_user", "change_user", "delete_user"])
    )
    client.force_login(staff)

    listed = client.get(USERS)
    forced = client.post(
        USERS,
        {"action": "erase_personal_data", "_selected_action": [person.pk], "post": "yes"},
    )

    assert listed.status_code == 200
    assert "erase_personal_data" not in action_names(listed)
    assert forced.status_code in {200, 302}
    person.refresh_from_db()
    assert person.get_username() == USERNAME
