"""Changes reached through a model's signals are recorded in the name of whoever acted:
a silence saved or deleted in the admin, a rule disabled or deleted through the API."""

from __future__ import annotations

import pytest

from controlplane.alerting.models import AlertEvent, Silence
from controlplane.catalog.actors import CONSOLE, Actor
from controlplane.catalog.models import ApiToken, Role
from tests.alerting.test_admin import SILENCES, silence_form
from tests.factories import make_alert, make_rule

pytestmark = pytest.mark.django_db


def actors_of(alert, kind: str) -> list[str]:
    return list(alert.events.filter(kind=kind).values_list("actor", flat=True))


def test_a_silence_saved_and_deleted_in_the_admin_names_its_author(client, member, org):
    manager = member(org, Role.MANAGER)
    client.force_login(manager)
    alert = make_alert(make_rule(org, "api.5xx"))

    response = client.post(f"{SILENCES}add/", silence_form(org))
    assert response.status_code == 302
    silence = Silence.objects.get()
    client.post(f"{SILENCES}{silence.pk}/delete/", {"post": "yes"})

    assert not Silence.objects.exists()
    assert actors_of(alert, AlertEvent.Kind.SILENCED) == [Actor.user(manager).spec]
    assert actors_of(alert, AlertEvent.Kind.UNSILENCED) == [Actor.user(manager).spec]


def test_a_rule_disabled_by_a_token_and_deleted_by_a_manager_names_each(api, member, org):
    token, plaintext = ApiToken.issue(org, ApiToken.Scope.WRITE, "ci")
    disabled, deleted = make_rule(org, "queue.depth"), make_rule(org, "disk.full")
    first, second = make_alert(disabled), make_alert(deleted, "fp-2")

    answer = api(plaintext).patch(
        f"/api/v1/rules/{disabled.key}/", {"enabled": False}, format="json"
    )
    assert answer.status_code == 200, answer.json()
    client = api()
    manager = member(org, Role.MANAGER)
    client.force_login(manager)
    assert client.delete(f"/api/v1/rules/{deleted.key}/").status_code == 204

    assert actors_of(first, AlertEvent.Kind.RESOLVED) == [Actor.token(token).spec]
    assert actors_of(second, AlertEvent.Kind.RESOLVED) == [Actor.user(manager).spec]


def test_outside_any_request_a_change_is_the_consoles(org):
    rule = make_rule(org)
    alert = make_alert(rule)

    rule.enabled = False
    rule.save()

    assert actors_of(alert, AlertEvent.Kind.RESOLVED) == [CONSOLE.spec]
