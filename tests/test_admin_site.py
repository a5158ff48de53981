"""The admin site's own views keep the organisation walls: view on site, autocomplete."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.test import Client

from controlplane.admin_site import ControlPlaneAdminSite
from controlplane.catalog.models import Role
from runbooks.models import Runbook, RunbookRevision, Via
from tests.factories import make_alert, make_rule

pytestmark = pytest.mark.django_db


def location(response) -> str:
    """Where a redirect goes, less the scheme and host the shortcut adds."""
    return urlsplit(response["Location"]).path


def page_text(response) -> str:
    """The page less its CSRF token, which is masked afresh on every render."""
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "", response.content.decode())


def view_on_site(obj, object_id=None) -> str:
    content_type = ContentType.objects.get_for_model(type(obj))
    return f"/admin/r/{content_type.pk}/{obj.pk if object_id is None else object_id}/"


def make_runbook(organization, slug: str) -> Runbook:
    runbook = Runbook(organization=organization, slug=slug, title=slug, summary="s", body="# x")
    runbook.save_change(via=Via.ADMIN)
    return runbook


@pytest.fixture
def staff(member, org) -> Client:
    """A viewer of Acme, signed in to the admin."""
    client = Client()
    client.force_login(member(org, Role.VIEWER))
    return client


def test_the_project_uses_its_own_admin_site():
    assert isinstance(admin.site, ControlPlaneAdminSite)


def test_view_on_site_redirects_for_the_users_own_organisation(staff, org):
    runbook = make_runbook(org, "acme-restart")
    alert = make_alert(make_rule(org, "acme.errors"))

    for obj in (runbook, alert):
        response = staff.get(view_on_site(obj))
        assert response.status_code == 302
        assert location(response) == obj.get_absolute_url()


def test_view_on_site_redirects_for_shared_runbooks(staff):
    shared = make_runbook(None, "shared-restart")

    response = staff.get(view_on_site(shared))

    assert response.status_code == 302
    assert location(response) == shared.get_absolute_url()


def test_another_organisations_objects_are_as_absent_as_missing_ones(staff, other_org):
    secret = make_runbook(other_org, "globex-secret-slug")
    alert = make_alert(make_rule(other_org, "globex.errors"))
    missing = view_on_site(secret, object_id=secret.pk + 1000)

    answers = [staff.get(view_on_site(secret)), staff.get(view_on_site(alert))]
    absent = staff.get(missing)

    assert [a.status_code for a in answers] == [404, 404]
    assert absent.status_code == 404
    for answer in answers:
        assert b"globex-secret-slug" not in answer.content
        assert page_text(answer) == page_text(absent)  # nothing tells the two apart


@pytest.mark.parametrize("object_id", ["abc", "99999999999999999999999", "1/2"])
def test_ids_no_row_could_have_are_404(staff, org, object_id):
    runbook = make_runbook(org, "acme-restart")

    assert staff.get(view_on_site(runbook, object_id=object_id)).status_code == 404


@pytest.mark.parametrize("content_type_id", ["999999", "99999999999999999999999"])
def test_unknown_content_types_are_404(staff, content_type_id):
    assert staff.get(f"/admin/r/{content_type_id}/1/").status_code == 404


def test_models_without_a_model_admin_are_for_superusers_only(staff, org, other_org):
    # Revisions have pages of their own but no ModelAdmin to say whose they are.
    revision = make_runbook(other_org, "globex-secret-slug").revisions.get()
    own = make_runbook(org, "acme-restart").revisions.get()
    superuser = Client()
    superuser.force_login(get_user_model().objects.create_superuser("root", password="x" * 16))

    assert staff.get(view_on_site(revision)).status_code == 404
    assert staff.get(view_on_site(own)).status_code == 404
    response = superuser.get(view_on_site(revision))
    assert response.status_code == 302
    assert location(response) == revision.get_absolute_url()
    assert isinstance(revision, RunbookRevision)


def test_a_superuser_reaches_every_organisation(other_org):
    superuser = Client()
    superuser.force_login(get_user_model().objects.create_superuser("root", password="x" * 16))
    runbook = make_runbook(other_org, "globex-restart")

    assert location(superuser.get(view_on_site(runbook))) == runbook.get_absolute_url()


def test_view_on_site_is_for_staff_only(org):
    runbook = make_runbook(org, "acme-restart")

    response = Client().get(view_on_site(runbook))

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_the_admin_still_links_view_on_site_to_the_shortcut(staff, org):
    runbook = make_runbook(org, "acme-restart")

    page = staff.get(f"/admin/runbooks/runbook/{runbook.pk}/change/")

    assert view_on_site(runbook).encode() in page.content


def _every_field_of_every_registered_model():
    for model in admin.site._registry:
        for field in model._meta.get_fields(include_hidden=True):
            yield model._meta.app_label, model._meta.model_name, field.name


def test_autocomplete_answers_4xx_for_every_field_that_is_no_forward_relation(client):
    # Reverse relations (Service.rules, Organization.memberships, ...) made Django's
    # view fail with AttributeError: a 500 that any staff user could cause.
    client.force_login(get_user_model().objects.create_superuser("root", password="x" * 16))
    client.raise_request_exception = False
    answers = {}
    for app_label, model_name, field_name in _every_field_of_every_registered_model():
        params = {"app_label": app_label, "model_name": model_name, "field_name": field_name}
        answers[app_label, model_name, field_name] = client.get(
            "/admin/autocomplete/", params
        ).status_code

    assert answers[("catalog", "service", "rules")] == 403
    assert answers[("catalog", "organization", "memberships")] == 403
    assert {key: code for key, code in answers.items() if code >= 500} == {}


def test_autocomplete_still_serves_the_forward_relations_the_admin_uses(client, org, member):
    user = member(org, Role.MANAGER, username="dana")
    client.force_login(get_user_model().objects.create_superuser("root", password="x" * 16))
    params = {"app_label": "catalog", "model_name": "membership", "field_name": "user"}

    response = client.get("/admin/autocomplete/", {**params, "term": "dan"})

    assert response.status_code == 200
    assert response.json()["results"] == [{"id": str(user.pk), "text": "dana"}]


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"app_label": "nope", "model_name": "service", "field_name": "rules"},
        {"app_label": "catalog", "model_name": "service", "field_name": "nope"},
        {"app_label": "catalog", "model_name": "service", "field_name": "name"},
    ],
)
def test_autocomplete_refuses_malformed_requests(client, params):
    client.force_login(get_user_model().objects.create_superuser("root", password="x" * 16))

    assert client.get("/admin/autocomplete/", params).status_code == 403
