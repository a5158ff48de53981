import pytest
from django.core.management import call_command

from controlplane.catalog.models import TOKEN_PREFIX, ApiToken, token_digest

pytestmark = pytest.mark.django_db


def test_issued_token_is_stored_hashed_never_in_clear(org):
    token, plaintext = ApiToken.issue(org, ApiToken.Scope.READ, "ci")

    assert plaintext.startswith(TOKEN_PREFIX)
    stored = ApiToken.objects.values().get(pk=token.pk)
    assert plaintext not in {str(v) for v in stored.values()}
    assert stored["digest"] == token_digest(plaintext)
    assert stored["prefix"] == plaintext[:12]


def test_authenticate_finds_the_token_and_records_last_use(org):
    token, plaintext = ApiToken.issue(org, ApiToken.Scope.WRITE)

    found = ApiToken.authenticate(plaintext)

    assert found.pk == token.pk
    token.refresh_from_db()
    assert token.last_used_at is not None


@pytest.mark.parametrize("guess", ["", "cpt_", "nope", "cpt_" + "x" * 43, "cpt_" + "y" * 500])
def test_authenticate_refuses_unknown_tokens(org, guess):
    ApiToken.issue(org, ApiToken.Scope.READ)
    assert ApiToken.authenticate(guess) is None


def test_revoked_token_no_longer_authenticates(org):
    token, plaintext = ApiToken.issue(org, ApiToken.Scope.READ)
    token.revoke()
    assert ApiToken.authenticate(plaintext) is None


def test_create_api_token_command_prints_only_the_token(org, capsys):
    call_command("create_api_token", org="acme", scope="write", name="deploy")

    out = capsys.readouterr().out
    assert out.count("\n") == 1
    plaintext = out.strip()
    token = ApiToken.authenticate(plaintext)
    assert token.organization == org
    assert token.scope == "write"
    assert token.name == "deploy"


def test_create_api_token_for_unknown_org_is_a_clear_error(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No organisation with the slug 'nope'"):
        call_command("create_api_token", org="nope", scope="read")


def test_create_organization_command_is_idempotent(db, capsys):
    call_command("create_organization", "ops", name="Operations")
    call_command("create_organization", "ops", name="Operations team")

    from controlplane.catalog.models import Organization

    assert Organization.objects.get(slug="ops").name == "Operations team"
    assert Organization.objects.count() == 1


def test_create_organization_refuses_a_bad_slug(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="slug"):
        call_command("create_organization", "not a slug!", name="X")
