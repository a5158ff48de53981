"""Failed logins are throttled per username and address (django-axes, docs/security.md)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.http import HttpRequest
from django.test import Client
from django.utils import timezone

from controlplane.login_throttle import cooloff_minutes

PASSWORD = "correct horse battery"
LOGIN = "/accounts/login/"
ADMIN_LOGIN = "/admin/login/"


@pytest.fixture
def user(db):
    return get_user_model().objects.create_user("oncall", password=PASSWORD, is_staff=True)


def attempt(path: str, username: str, password: str, address: str = "203.0.113.7"):
    return Client(REMOTE_ADDR=address).post(path, {"username": username, "password": password})


def fail(
    times: int, path: str = LOGIN, username: str = "oncall", address: str = "203.0.113.7"
) -> list[int]:
    """Wrong passwords, `times` of them; the status codes of the answers."""
    return [attempt(path, username, "wrong password", address).status_code for _ in range(times)]


def test_the_defaults_are_five_failures_and_fifteen_minutes():
    assert django_settings.AXES_FAILURE_LIMIT == 5
    assert django_settings.AXES_COOLOFF_TIME == timedelta(minutes=15)
    assert django_settings.AXES_LOCKOUT_PARAMETERS == [["username", "ip_address"]]


def test_after_the_limit_even_the_right_password_is_refused_with_429(user):
    # The form again, with its error, until the failure that reaches the limit.
    assert fail(django_settings.AXES_FAILURE_LIMIT) == [200, 200, 200, 200, 429]

    response = attempt(LOGIN, "oncall", PASSWORD)

    assert response.status_code == 429
    assert response["Retry-After"] == str(15 * 60)
    assert "Too many failed logins" in response.content.decode()
    assert "_auth_user_id" not in response.wsgi_request.session


def test_below_the_limit_the_right_password_still_logs_in_and_forgets_the_failures(user):
    fail(django_settings.AXES_FAILURE_LIMIT - 1)

    assert attempt(LOGIN, "oncall", PASSWORD).status_code == 302
    # The failures were forgotten: the limit counts from zero again.
    fail(django_settings.AXES_FAILURE_LIMIT - 1)
    assert attempt(LOGIN, "oncall", PASSWORD).status_code == 302


def test_the_admin_login_is_throttled_too_and_counts_with_the_other(user):
    assert fail(2, path=LOGIN) == [200, 200]
    assert fail(django_settings.AXES_FAILURE_LIMIT - 2, path=ADMIN_LOGIN) == [200, 200, 429]

    response = attempt(ADMIN_LOGIN, "oncall", PASSWORD)

    assert response.status_code == 429
    assert "Too many failed logins" in response.content.decode()


def test_the_lock_is_on_the_pair_of_username_and_address(user):
    other = get_user_model().objects.create_user("colleague", password=PASSWORD)
    fail(django_settings.AXES_FAILURE_LIMIT)

    # The same address with another username, the same username from another address.
    assert attempt(LOGIN, other.username, PASSWORD).status_code == 302
    assert attempt(LOGIN, "oncall", PASSWORD, address="198.51.100.9").status_code == 302
    assert attempt(LOGIN, "oncall", PASSWORD).status_code == 429


def test_unknown_usernames_are_locked_out_alike(db):
    # Locked or not must not tell whether the account exists.
    fail(django_settings.AXES_FAILURE_LIMIT, username="nobody")

    assert attempt(LOGIN, "nobody", "anything").status_code == 429


def test_the_lock_lifts_after_the_cooloff(user):
    fail(django_settings.AXES_FAILURE_LIMIT)
    assert attempt(LOGIN, "oncall", PASSWORD).status_code == 429

    passed = timezone.now() - django_settings.AXES_COOLOFF_TIME - timedelta(seconds=1)
    AccessAttempt.objects.update(attempt_time=passed)

    assert attempt(LOGIN, "oncall", PASSWORD).status_code == 302


def test_a_forged_forwarded_for_header_does_not_escape_the_lock(user):
    # The address is the connection's: X-Forwarded-For is whatever the client says.
    fail(django_settings.AXES_FAILURE_LIMIT)

    response = Client(REMOTE_ADDR="203.0.113.7", HTTP_X_FORWARDED_FOR="192.0.2.44").post(
        LOGIN, {"username": "oncall", "password": PASSWORD}
    )

    assert response.status_code == 429


def test_a_locked_out_username_keeps_its_session_and_the_api_its_tokens(
    org, member, read_token, api
):
    user = member(org, "viewer", username="oncall")
    signed_in = Client()
    signed_in.force_login(user)
    fail(django_settings.AXES_FAILURE_LIMIT)
    assert attempt(LOGIN, "oncall", PASSWORD).status_code == 429

    assert signed_in.get("/api/v1/services/").status_code == 200
    assert signed_in.get("/runbooks/").status_code == 200
    assert api(read_token).get("/api/v1/services/").status_code == 200


def test_the_lockout_page_names_no_username(db):
    fail(django_settings.AXES_FAILURE_LIMIT, username="someone-secret")

    response = attempt(LOGIN, "someone-secret", "x")

    assert response.status_code == 429
    assert "someone-secret" not in response.content.decode()


def test_log_lines_about_failures_carry_no_username_or_address(user, caplog):
    fail(django_settings.AXES_FAILURE_LIMIT)

    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "AXES" in text
    assert "oncall" not in text
    assert "203.0.113.7" not in text


def test_client_login_needs_a_request_force_login_does_not(user):
    # Axes refuses to guess who is logging in from where: a login without a request
    # would escape the throttle. The suite logs in with force_login, or passes one.
    assert Client().login(request=HttpRequest(), username="oncall", password=PASSWORD)
    with pytest.raises(ValueError, match="request"):
        Client().login(username="oncall", password=PASSWORD)


@pytest.mark.parametrize(
    ("cooloff", "minutes"),
    [(timedelta(minutes=15), 15), (timedelta(seconds=61), 2), (timedelta(seconds=1), 1)],
)
def test_the_page_rounds_the_wait_up_to_whole_minutes(cooloff, minutes):
    assert cooloff_minutes(cooloff) == minutes
