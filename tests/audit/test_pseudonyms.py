"""People in logs and spans by pseudonym: stable, distinct, made once, cheap to look up."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Callable, Iterator

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from controlplane.api.authentication import TokenPrincipal
from controlplane.audit import pseudonyms
from controlplane.audit.models import Pseudonym
from controlplane.catalog.actors import Actor
from controlplane.catalog.models import ApiToken, Role
from observability import options
from observability.logging import JsonFormatter
from observability.middleware import SPAN_NAME
from tests.observability.conftest import _span_exporter, spans  # noqa: F401
from tests.races import race

PSEUDONYM = re.compile(r"p_[0-9a-f]{16}")
PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def _no_cached_pseudonyms() -> Iterator[None]:
    # The cache lives as long as the process; each test starts from nothing.
    pseudonyms.forget_all()
    yield
    pseudonyms.forget_all()


@pytest.fixture
def log_lines() -> Iterator[Callable[[], list[dict]]]:
    """What the control plane's own log handler writes, line by line, parsed.

    The handler settings.LOGGING configures (its JSON formatter and its filters), on a
    stream of the test's, at the levels the settings give every logger.
    """
    root = logging.getLogger()
    [configured] = [h for h in root.handlers if isinstance(h.formatter, JsonFormatter)]
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(configured.formatter)
    for log_filter in configured.filters:
        handler.addFilter(log_filter)
    root.addHandler(handler)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)


def person(username: str = "wilhelmina.pseudo", **fields):
    return get_user_model().objects.create_user(
        username,
        email=f"{username}@pseudo.example",
        password=PASSWORD,
        first_name="Wilhelmina",
        last_name="Pseudonymova",
        is_staff=True,
        **fields,
    )


# The pseudonym itself ------------------------------------------------------------------


@pytest.mark.django_db
def test_a_pseudonym_is_stable_per_user_and_differs_across_users():
    ada, grace = person("ada.p"), person("grace.p")

    first = pseudonyms.of_user_id(ada.pk)

    assert PSEUDONYM.fullmatch(first)
    assert pseudonyms.of_user_id(ada.pk) == first
    assert pseudonyms.of_user(ada) == first
    assert pseudonyms.actor_spec(Actor.user(ada)) == f"user:{first}"
    assert pseudonyms.of_user_id(grace.pk) not in {first, None}
    assert Pseudonym.objects.filter(user=ada).count() == 1
    assert pseudonyms.names({first}) == {first: "ada.p"}


@pytest.mark.django_db
def test_no_user_and_a_user_gone_have_no_pseudonym():
    gone = person("gone.p")
    gone_pk = gone.pk
    gone.delete()

    assert pseudonyms.of_user_id(None) is None
    assert pseudonyms.of_user_id(gone_pk) is None
    assert pseudonyms.people({"user_id": gone_pk, "other": 3}, frozenset({"user_id"})) == {
        "user_id": pseudonyms.ERASED,
        "other": 3,
    }


@pytest.mark.django_db(transaction=True)
def test_a_pseudonym_is_made_once_when_requests_race_for_it():
    ada = person("racing.p")

    made = race(8, lambda: pseudonyms.of_user_id(ada.pk))

    assert len(set(made)) == 1
    assert PSEUDONYM.fullmatch(made[0])
    assert list(Pseudonym.objects.filter(user=ada).values_list("value", flat=True)) == made[:1]


@pytest.mark.django_db
def test_an_api_token_is_no_person_and_keeps_its_id(org):
    token, _ = ApiToken.issue(org, ApiToken.Scope.READ, "ci")

    assert pseudonyms.of_user(TokenPrincipal(token)) == f"token:{token.pk}"
    assert not Pseudonym.objects.exists()


# Logs and spans of requests ------------------------------------------------------------


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def request_lines(lines: list[dict], request_id: str) -> list[dict]:
    found = [line for line in lines if line.get("request_id") == request_id]
    assert found, f"no log line of request {request_id}: {lines}"
    return found


@pytest.mark.django_db
def test_log_lines_and_span_of_a_signed_in_request_carry_the_pseudonym(
    log_lines,
    spans,  # noqa: F811
    member,
    org,
):
    user = member(org, Role.MANAGER, username="zebulon.logline")
    user.first_name, user.last_name = "Zebulon", "Loglinesson"
    user.save()
    client = signed_in(user)

    # A page that does not exist: Django logs "Not Found" for the request.
    response = client.get("/alerts/987654/", HTTP_X_REQUEST_ID="req-pseudonym-1")

    assert response.status_code == 404
    expected = pseudonyms.of_user_id(user.pk)
    lines = request_lines(log_lines(), "req-pseudonym-1")
    assert {line["user_id"] for line in lines} == {expected}
    [server] = [s for s in spans.get_finished_spans() if s.name == SPAN_NAME]
    assert server.attributes["enduser.id"] == expected
    text = json.dumps(lines) + json.dumps(dict(server.attributes))
    for personal in ("zebulon.logline", "zebulon.logline@example.com", "Zebulon", "Loglinesson"):
        assert personal not in text
    assert f'"user_id": "{user.pk}"' not in text


def pseudonym_queries(client: Client, path: str) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path)
    assert response.status_code == 200
    return [q["sql"] for q in queries.captured_queries if "audit_pseudonym" in q["sql"]]


@pytest.mark.django_db
def test_signing_in_looks_the_pseudonym_up_so_requests_cost_no_query_for_it(member, org):
    user = member(org, Role.VIEWER, username="quincy.cached")  # its membership made one

    client = signed_in(user)

    assert pseudonym_queries(client, "/alerts/") == []
    assert pseudonym_queries(client, "/alerts/") == []


@pytest.mark.django_db
def test_a_pseudonym_made_at_sign_in_is_kept_from_the_first_request_on():
    user = person("newly.made")
    client = signed_in(user)  # made here, inside a transaction: not kept until committed

    assert len(pseudonym_queries(client, "/alerts/")) == 1  # found, so kept
    assert pseudonym_queries(client, "/alerts/") == []


@pytest.mark.django_db
def test_a_pseudonym_made_in_a_transaction_rolled_back_is_not_cached():
    from django.db import transaction

    user = person("rolled.back")
    made: list[str | None] = []

    def failing_request() -> None:
        with transaction.atomic():
            made.append(pseudonyms.of_user(user))
            raise RuntimeError("the request failed")

    with pytest.raises(RuntimeError):
        failing_request()

    assert not Pseudonym.objects.filter(user=user).exists()
    assert pseudonyms.of_user(user) not in {made[0], None}


@pytest.mark.django_db
def test_a_token_request_is_named_by_its_token(
    log_lines,
    spans,  # noqa: F811
    org,
):
    token, plaintext = ApiToken.issue(org, ApiToken.Scope.READ, "ci")

    response = Client().get(
        "/api/v1/rules/no-such-rule/",
        HTTP_AUTHORIZATION=f"Bearer {plaintext}",
        HTTP_X_REQUEST_ID="req-token-1",
    )

    assert response.status_code == 404
    lines = request_lines(log_lines(), "req-token-1")
    assert {line["user_id"] for line in lines} == {f"token:{token.pk}"}
    [server] = [s for s in spans.get_finished_spans() if s.name == SPAN_NAME]
    assert server.attributes["enduser.id"] == f"token:{token.pk}"
    assert not Pseudonym.objects.exists()


@pytest.mark.django_db
def test_failed_logins_and_the_lock_out_log_no_username_and_no_address(log_lines, settings):
    person("ulrike.lockout")
    client = Client(REMOTE_ADDR="198.51.100.231")
    statuses = [
        client.post(
            "/accounts/login/", {"username": "ulrike.lockout", "password": "wrong"}
        ).status_code
        for _ in range(settings.AXES_FAILURE_LIMIT)
    ]

    assert statuses[-1] == 429  # locked out: axes logged the failures and the lock
    lines = log_lines()
    assert any(line["logger"].startswith("axes") for line in lines)
    text = json.dumps(lines)
    assert "ulrike" not in text
    assert "198.51.100.231" not in text


# The observability package's option ---------------------------------------------------


def test_the_control_plane_names_users_by_pseudonym():
    loaded = options.load()

    assert options.user_identifier(loaded.user_id) is pseudonyms.of_user


def test_the_package_names_users_by_primary_key_by_default(settings):
    settings.OBSERVABILITY = {"ENABLED": True}

    assert options.user_identifier(options.load().user_id) is options.primary_key


@pytest.mark.parametrize("value", ["of_user", "controlplane audit", 42])
def test_a_user_id_that_is_no_dotted_path_is_refused(settings, value):
    settings.OBSERVABILITY = {"USER_ID": value}

    with pytest.raises(ImproperlyConfigured, match="USER_ID"):
        options.load()


def test_a_user_id_function_that_cannot_be_imported_is_refused_at_start():
    with pytest.raises(ImproperlyConfigured, match="USER_ID"):
        options.user_identifier("controlplane.audit.pseudonyms.no_such_function")
