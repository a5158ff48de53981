"""Managers run their organisation's memberships in the admin, and only theirs."""

import pytest
from django.contrib.auth import get_user_model

from controlplane.catalog.models import Membership, Role

pytestmark = pytest.mark.django_db

LIST = "/admin/catalog/membership/"
ADD = "/admin/catalog/membership/add/"


def account(username: str):
    return get_user_model().objects.create_user(username, password="correct horse battery")


@pytest.fixture
def manager(client, member, org):
    user = member(org, Role.MANAGER)
    client.force_login(user)
    return user


def test_manager_adds_an_existing_user_by_username(client, manager, org):
    newcomer = account("newcomer")

    response = client.post(ADD, {"organization": org.pk, "username": "newcomer", "role": "viewer"})

    assert response.status_code == 302, response.context["adminform"].form.errors
    membership = Membership.objects.get(organization=org, user=newcomer)
    assert membership.role == Role.VIEWER


def test_unknown_username_is_a_form_error(client, manager, org):
    response = client.post(ADD, {"organization": org.pk, "username": "nobody", "role": "viewer"})

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "no account with the username 'nobody'" in errors["username"][0]
    assert Membership.objects.filter(organization=org).count() == 1


def test_adding_an_existing_member_again_is_a_form_error(client, manager, member, org):
    viewer = member(org, Role.VIEWER)

    response = client.post(
        ADD, {"organization": org.pk, "username": viewer.username, "role": "manager"}
    )

    assert response.status_code == 200
    assert "already a member" in response.context["adminform"].form.errors["username"][0]
    assert Membership.objects.get(organization=org, user=viewer).role == Role.VIEWER


def test_manager_cannot_grant_membership_in_an_organisation_they_do_not_manage(
    client, manager, org, other_org
):
    account("newcomer")

    response = client.post(
        ADD, {"organization": other_org.pk, "username": "newcomer", "role": "manager"}
    )

    assert response.status_code == 200
    assert "organization" in response.context["adminform"].form.errors
    assert not Membership.objects.filter(organization=other_org).exists()


def test_organisation_choices_are_the_managed_ones(client, manager, member, org, other_org):
    Membership.objects.create(organization=other_org, user=manager, role=Role.VIEWER)

    page = client.get(ADD)

    choices = [label for pk, label in page.context["adminform"].form.fields["organization"].choices]
    assert choices == ["---------", "Acme"]


def test_manager_changes_a_role(client, manager, member, org):
    viewer = member(org, Role.VIEWER)
    membership = Membership.objects.get(organization=org, user=viewer)
    page = client.get(f"{LIST}{membership.pk}/change/")
    assert viewer.username in page.content.decode()

    response = client.post(f"{LIST}{membership.pk}/change/", {"role": "responder"})

    assert response.status_code == 302
    membership.refresh_from_db()
    assert (membership.role, membership.user_id, membership.organization_id) == (
        Role.RESPONDER,
        viewer.pk,
        org.pk,
    )


def test_manager_removes_a_member(client, manager, member, org):
    viewer = member(org, Role.VIEWER)
    membership = Membership.objects.get(organization=org, user=viewer)

    response = client.post(f"{LIST}{membership.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert not Membership.objects.filter(pk=membership.pk).exists()
    assert get_user_model().objects.filter(pk=viewer.pk).exists()


def test_manager_lists_only_their_organisations_members(client, manager, member, org, other_org):
    member(org, Role.VIEWER, username="colleague")
    member(other_org, Role.MANAGER, username="stranger")

    page = client.get(LIST)

    assert page.status_code == 200
    content = page.content.decode()
    assert "colleague" in content
    assert "stranger" not in content


def test_manager_cannot_touch_another_organisations_membership(client, manager, member, other_org):
    stranger = member(other_org, Role.VIEWER, username="stranger")
    membership = Membership.objects.get(user=stranger)

    change = client.post(f"{LIST}{membership.pk}/change/", {"role": "manager"})
    delete = client.post(f"{LIST}{membership.pk}/delete/", {"post": "yes"})

    # The admin answers rows outside its queryset with a redirect to its index.
    assert change.status_code == delete.status_code == 302
    membership.refresh_from_db()
    assert membership.role == Role.VIEWER


def test_the_add_form_offers_no_list_of_users(client, manager, org, other_org):
    account("outsider-in-no-org")

    content = client.get(ADD).content.decode()

    assert "outsider-in-no-org" not in content
    assert 'name="username"' in content
    assert 'name="user"' not in content


@pytest.mark.parametrize("role", [Role.VIEWER, Role.RESPONDER])
def test_non_managers_do_not_see_memberships(client, member, org, role):
    client.force_login(member(org, role))
    membership = Membership.objects.get(organization=org)

    assert client.get(LIST).status_code == 403
    assert client.get(f"{LIST}{membership.pk}/change/").status_code in (302, 403)
    assert "membership" not in client.get("/admin/").content.decode().lower()


def test_superuser_sees_every_membership(client, member, org, other_org):
    member(org, Role.VIEWER, username="colleague")
    member(other_org, Role.MANAGER, username="stranger")
    client.force_login(
        get_user_model().objects.create_superuser("root", password="correct horse battery")
    )

    content = client.get(LIST).content.decode()

    assert "colleague" in content
    assert "stranger" in content
