"""Editing runbooks in the admin: validation, history, preview, search."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError

from controlplane.catalog.models import Role
from runbooks.models import Runbook, Via

pytestmark = pytest.mark.django_db

CHANGE = "/admin/runbooks/runbook/{}/change/"


def form_data(runbook: Runbook, **changes) -> dict:
    data = {
        "organization": runbook.organization_id or "",
        "slug": runbook.slug,
        "title": runbook.title,
        "summary": runbook.summary,
        "owner": runbook.owner,
        "tags": ", ".join(runbook.tags),
        "reviewed_at": runbook.reviewed_at.isoformat() if runbook.reviewed_at else "",
        # What a browser posts from a textarea.
        "body": runbook.body.replace("\n", "\r\n"),
        "revisions-TOTAL_FORMS": runbook.revisions.count(),
        "revisions-INITIAL_FORMS": runbook.revisions.count(),
        "revisions-MIN_NUM_FORMS": 0,
        "revisions-MAX_NUM_FORMS": 1000,
    }
    for number, revision in enumerate(runbook.revisions.all()):
        data[f"revisions-{number}-id"] = revision.pk
        data[f"revisions-{number}-runbook"] = runbook.pk
    data.update(changes)
    return data


@pytest.fixture
def manager(client, member, org):
    user = member(org, Role.MANAGER)
    client.force_login(user)
    return user


def test_an_admin_edit_records_who_and_a_revision(client, manager, org, make_runbook):
    runbook = make_runbook("checkout", organization=org)

    response = client.post(
        CHANGE.format(runbook.pk), form_data(runbook, body="## Triage\r\n\r\nNew step.\r\n")
    )

    assert response.status_code == 302, response.context["errors"] if response.context else ""
    runbook.refresh_from_db()
    assert runbook.body == "## Triage\n\nNew step.\n"
    assert runbook.updated_by == manager
    assert '<h2 id="triage">' in runbook.body_html
    latest = runbook.revisions.first()
    assert (latest.via, latest.changed_by, latest.body) == (Via.ADMIN, manager, runbook.body)
    assert runbook.revisions.count() == 2


def test_saving_without_changes_records_nothing(client, manager, org, make_runbook):
    runbook = make_runbook("checkout", organization=org)
    before = (runbook.updated_at, runbook.revisions.count())

    response = client.post(CHANGE.format(runbook.pk), form_data(runbook))

    assert response.status_code == 302
    runbook.refresh_from_db()
    assert (runbook.updated_at, runbook.revisions.count()) == before


def test_tags_are_typed_as_a_comma_list_and_checked(client, manager, org, make_runbook):
    runbook = make_runbook("checkout", organization=org)

    client.post(CHANGE.format(runbook.pk), form_data(runbook, tags="API, payments,  db"))
    runbook.refresh_from_db()
    assert runbook.tags == ["api", "payments", "db"]

    response = client.post(CHANGE.format(runbook.pk), form_data(runbook, tags="two_words!"))
    assert response.status_code == 200
    assert "Tags are lowercase words joined by hyphens" in response.content.decode()


def test_the_change_page_previews_the_sanitised_render_and_history(
    client, manager, org, make_runbook
):
    runbook = make_runbook(
        "checkout", organization=org, body="## Triage\n\n<script>alert(1)</script>Step.\n"
    )

    html = client.get(CHANGE.format(runbook.pk)).content.decode()

    preview = html.split('<div class="runbook-preview">', 1)[1].split("</div>", 1)[0]
    assert '<h2 id="triage">Triage</h2>' in preview
    assert "<script" not in preview
    assert f"/runbooks/checkout/revisions/{runbook.revisions.get().pk}/" in html


def test_a_manager_cannot_make_a_shared_runbook(client, manager):
    response = client.post(
        "/admin/runbooks/runbook/add/",
        {"slug": "mine", "title": "Mine", "summary": "s", "owner": "o", "tags": "", "body": "b"},
    )

    assert response.status_code == 200
    assert not Runbook.objects.exists()


def test_a_manager_can_add_one_to_their_organisation(client, manager, org):
    response = client.post(
        "/admin/runbooks/runbook/add/",
        {"organization": org.pk, "slug": "mine", "title": "Mine", "summary": "s", "owner": "o",
         "tags": "api", "body": "## Triage\r\n"},
    )  # fmt: skip

    assert response.status_code == 302
    runbook = Runbook.objects.get()
    assert runbook.revisions.get().changed_by == manager


def test_shared_runbooks_are_read_only_for_managers(client, manager, make_runbook):
    runbook = make_runbook("api-5xx")

    response = client.post(CHANGE.format(runbook.pk), form_data(runbook, title="Hijacked"))

    assert response.status_code == 403
    runbook.refresh_from_db()
    assert runbook.title != "Hijacked"


def test_another_organisations_runbook_is_not_in_the_admin(
    client, manager, other_org, make_runbook
):
    runbook = make_runbook("ledger", organization=other_org)

    assert client.get(CHANGE.format(runbook.pk)).status_code == 302  # "does not exist" redirect
    assert "ledger" not in client.get("/admin/runbooks/runbook/").content.decode()


def test_search_and_tag_filter_in_the_changelist(client, org, make_runbook):
    make_runbook("a", organization=org, title="Alpha", body="Uses pg_stat_activity.\n")
    make_runbook("b", organization=org, title="Beta", tags=["postgres"])
    client.force_login(get_user_model().objects.create_superuser("root"))

    def shown(**params):
        response = client.get("/admin/runbooks/runbook/", params)
        return [r.title for r in response.context["cl"].result_list]

    assert shown(q="pg_stat_activity") == ["Alpha"]
    assert shown(q="postgres") == ["Beta"]
    assert shown(tag="postgres") == ["Beta"]


@pytest.mark.parametrize(
    ("fields", "error_field"),
    [
        ({"slug": "Bad_Slug"}, "slug"),
        ({"title": "   "}, "title"),
        ({"tags": ["ok", "Not OK"]}, "tags"),
        ({"tags": "api"}, "tags"),
    ],
)
def test_model_validation(fields, error_field):
    values = {"slug": "ok", "title": "T", "summary": "s", "body": "b", "owner": "o", "tags": []}
    runbook = Runbook(**{**values, **fields})

    with pytest.raises(ValidationError) as raised:
        runbook.full_clean()

    assert error_field in raised.value.message_dict


def test_slug_is_unique_among_shared_runbooks_and_within_an_organisation(org, make_runbook):
    make_runbook("api-5xx")
    make_runbook("api-5xx", organization=org)

    with pytest.raises(ValidationError, match="shared runbook with this slug"):
        Runbook(slug="api-5xx", title="t", summary="s", body="b", owner="o").full_clean()
    with pytest.raises(ValidationError, match="organisation already has a runbook"):
        Runbook(
            organization=org, slug="api-5xx", title="t", summary="s", body="b", owner="o"
        ).full_clean()


@pytest.mark.parametrize("field", ["slug", "title", "summary", "body", "owner", "tags"])
def test_model_validation_refuses_nul_which_postgresql_cannot_store(field):
    values = {"slug": "ok", "title": "T", "summary": "s", "body": "b", "owner": "o", "tags": []}
    values[field] = ["ok", "a\x00"] if field == "tags" else "a\x00b"

    with pytest.raises(ValidationError) as raised:
        Runbook(**values).full_clean()

    assert any("NUL" in message for message in raised.value.message_dict[field])


def test_superusers_filter_shared_runbooks_apart(client, org, make_runbook):
    make_runbook("shared-one")
    make_runbook("own-one", organization=org)
    client.force_login(
        get_user_model().objects.create_superuser("root", password="correct horse battery")
    )

    shared = client.get("/admin/runbooks/runbook/?organization=shared")
    own = client.get(f"/admin/runbooks/runbook/?organization={org.pk}")

    assert [r.slug for r in shared.context["cl"].result_list] == ["shared-one"]
    assert [r.slug for r in own.context["cl"].result_list] == ["own-one"]
