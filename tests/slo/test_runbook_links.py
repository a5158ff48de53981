"""A runbook's "linked from" list names the SLOs citing it, within the reader's walls."""

import pytest

from controlplane.catalog.models import Role
from runbooks.models import Runbook
from tests.factories import make_slo


@pytest.fixture
def viewer(client, member, org):
    client.force_login(member(org, Role.VIEWER))
    return client


def test_a_runbook_lists_the_slos_naming_it_and_not_another_organisations(viewer, org, other_org):
    runbook = Runbook.objects.create(
        slug="checkout-slo", title="Checkout SLO", summary="s", body="b", owner="sre"
    )
    make_slo(org, "checkout-availability", name="Checkout availability", runbook=runbook)
    make_slo(org, "search-availability", name="Search availability")
    make_slo(other_org, "their-availability", name="Theirs", runbook=runbook)

    content = viewer.get("/runbooks/checkout-slo/").content.decode()

    assert "SLO checkout-availability: Checkout availability" in content
    assert "/slos/checkout-availability/?organization=acme" in content
    assert "search-availability" not in content
    assert "their-availability" not in content


def test_the_shared_burn_rate_runbook_lists_the_slos_that_name_no_runbook(viewer, org):
    Runbook.objects.create(
        slug="slo-burn-rate", title="SLO burning", summary="s", body="b", owner="sre"
    )
    own = Runbook.objects.create(
        organization=org, slug="own", title="Own", summary="s", body="b", owner="sre"
    )
    make_slo(org, "defaulted")
    make_slo(org, "named", runbook=own)

    content = viewer.get("/runbooks/slo-burn-rate/").content.decode()

    assert "SLO defaulted" in content
    assert "SLO named" not in content
