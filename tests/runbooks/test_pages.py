"""The runbook pages: walls, search, the rendered page, history, and their query counts."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from controlplane.catalog.models import Role
from runbooks import links
from runbooks.models import Runbook, Via

pytestmark = pytest.mark.django_db


@pytest.fixture
def viewer(client, member, org):
    user = member(org, Role.VIEWER)
    client.force_login(user)
    return user


def titles(response) -> list[str]:
    return [runbook.title for runbook in response.context["runbooks"]]


@pytest.mark.parametrize(
    "path", ["/runbooks/", "/runbooks/api-5xx/", "/runbooks/api-5xx/revisions/"]
)
def test_anonymous_visitors_are_sent_to_log_in(client, make_runbook, path):
    make_runbook("api-5xx")

    response = client.get(path)

    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={path}"


def test_list_shows_shared_and_own_runbooks_not_another_organisations(
    client, viewer, org, other_org, make_runbook
):
    make_runbook("api-5xx", title="Shared one")
    make_runbook("checkout", organization=org, title="Acme one")
    make_runbook("ledger", organization=other_org, title="Globex one")

    response = client.get("/runbooks/")

    assert response.status_code == 200
    assert titles(response) == ["Acme one", "Shared one"]
    assert "Globex one" not in response.content.decode()


@pytest.mark.parametrize("role", [Role.VIEWER, Role.RESPONDER, Role.MANAGER])
def test_every_role_reads_its_organisations_runbook(client, member, org, make_runbook, role):
    make_runbook("checkout", organization=org, title="Acme one")
    client.force_login(member(org, role))

    assert client.get("/runbooks/checkout/").status_code == 200


def test_another_organisations_runbook_is_a_404_like_a_missing_one(
    client, viewer, other_org, make_runbook
):
    make_runbook("ledger", organization=other_org, title="Globex ledger")

    foreign = client.get("/runbooks/ledger/")
    missing = client.get("/runbooks/no-such-page/")

    assert foreign.status_code == missing.status_code == 404
    body = foreign.content.decode()
    assert "Globex ledger" not in body
    assert 'name="q"' in body
    assert 'value="ledger"' in body
    assert 'value="no such page"' in missing.content.decode()


def test_an_unlikely_slug_still_gets_the_runbook_404(client, viewer):
    response = client.get("/runbooks/Not%20A%20Slug%3Cb%3E/")

    assert response.status_code == 404
    assert 'name="q"' in response.content.decode()
    assert "<b>" not in response.content.decode()


def test_an_account_without_organisation_sees_no_runbooks(client, make_runbook):
    make_runbook("api-5xx")
    client.force_login(get_user_model().objects.create_user("loner"))

    assert titles(client.get("/runbooks/")) == []
    assert client.get("/runbooks/api-5xx/").status_code == 404


def test_superusers_see_every_runbook(client, org, other_org, make_runbook):
    make_runbook("api-5xx")
    make_runbook("checkout", organization=org)
    make_runbook("ledger", organization=other_org)
    client.force_login(get_user_model().objects.create_superuser("root"))

    assert len(titles(client.get("/runbooks/"))) == 3
    assert client.get("/runbooks/ledger/").status_code == 200


def test_an_organisations_own_version_replaces_the_shared_one(
    client, viewer, member, org, other_org, make_runbook
):
    make_runbook("api-5xx", title="Shared 5xx")
    make_runbook("api-5xx", organization=org, title="Acme 5xx")

    assert titles(client.get("/runbooks/")) == ["Acme 5xx"]
    assert client.get("/runbooks/api-5xx/").context["runbook"].title == "Acme 5xx"

    client.force_login(member(other_org, Role.VIEWER))
    assert client.get("/runbooks/api-5xx/").context["runbook"].title == "Shared 5xx"


def test_search_covers_title_summary_tags_and_body(client, viewer, make_runbook):
    make_runbook("a", title="Alpha", summary="Queue backlog.")
    make_runbook("b", title="Beta", tags=["postgres"])
    make_runbook("c", title="Gamma", body="## Triage\n\nRun pg_stat_activity.\n")
    make_runbook("d", title="Delta replication")

    def search(q):
        return titles(client.get("/runbooks/", {"q": q}))

    assert search("backlog") == ["Alpha"]
    assert search("POSTGRES") == ["Beta"]
    assert search("pg_stat_activity") == ["Gamma"]
    assert search("delta replication") == ["Delta replication"]
    assert search("delta backlog") == []


def test_tag_filter_matches_whole_tags(client, viewer, make_runbook):
    make_runbook("a", title="Tagged api", tags=["api", "availability"])
    make_runbook("b", title="Tagged api-latency", tags=["api-latency"])

    response = client.get("/runbooks/", {"tag": "api"})

    assert titles(response) == ["Tagged api"]
    assert response.context["tags"] == ["api", "api-latency", "availability"]
    assert titles(client.get("/runbooks/", {"tag": '"api'})) == []


def test_the_page_shows_the_rendered_runbook_and_its_facts(client, viewer, org, make_runbook):
    editor = get_user_model().objects.create_user("alice")
    make_runbook("checkout-errors", organization=org, tags=["api", "payments"], updated_by=editor)

    response = client.get("/runbooks/checkout-errors/")

    html = response.content.decode()
    assert response.status_code == 200
    for section in ["symptoms", "triage", "escalation", "mitigation", "verification"]:
        assert f'<h2 id="{section}">' in html
        assert f'<a href="#{section}">' in html
    assert "<h1>Checkout errors</h1>" in html
    assert "What to do about checkout-errors." in html
    assert "platform-sre" in html
    assert 'href="/runbooks/?tag=payments"' in html
    assert '<time datetime="2026-11-27">27 Nov 2026</time>' in html
    assert "by alice" in html
    assert "Nothing links here yet." in html


def test_the_page_warns_when_the_review_is_overdue(client, viewer, make_runbook):
    make_runbook("old", reviewed_at=None)

    assert "review overdue" in client.get("/runbooks/old/").content.decode()


def test_the_page_shows_the_stored_html_without_rendering_again(client, viewer, make_runbook):
    runbook = make_runbook("api-5xx")
    Runbook.objects.filter(pk=runbook.pk).update(body_html="<p>stored render</p>")

    assert "stored render" in client.get("/runbooks/api-5xx/").content.decode()


def test_html_from_an_older_renderer_is_rendered_afresh(client, viewer, make_runbook):
    runbook = make_runbook("api-5xx")
    Runbook.objects.filter(pk=runbook.pk).update(body_html="<p>stale</p>", rendering_version=0)

    html = client.get("/runbooks/api-5xx/").content.decode()

    assert "stale" not in html
    assert '<h2 id="triage">' in html


@pytest.fixture
def alert_rules_citing():
    def provider(runbook, reader):
        if runbook.slug == "api-5xx" and reader.is_authenticated:
            return [links.Link("Alert rule api.5xx", "/alerts/rules/1/")]
        return []

    links.register(provider)
    yield provider
    links.unregister(provider)


def test_linked_from_lists_what_providers_report(client, viewer, make_runbook, alert_rules_citing):
    make_runbook("api-5xx")
    make_runbook("other")

    cited = client.get("/runbooks/api-5xx/").content.decode()
    uncited = client.get("/runbooks/other/").content.decode()

    assert '<a href="/alerts/rules/1/">Alert rule api.5xx</a>' in cited
    assert "Nothing links here yet." in uncited


def test_history_lists_changes_and_shows_a_previous_version(client, viewer, make_runbook):
    runbook = make_runbook("api-5xx", body="## Triage\n\nFirst version.\n")
    first = runbook.revisions.get()
    runbook.body = "## Triage\n\nSecond version.\n"
    runbook.save_change(via=Via.SYNC)

    history = client.get("/runbooks/api-5xx/revisions/")
    old = client.get(f"/runbooks/api-5xx/revisions/{first.pk}/")

    assert [r.pk for r in history.context["revisions"]][-1] == first.pk
    assert len(history.context["revisions"]) == 2
    assert "First version." in old.content.decode()
    assert "Second version." not in old.content.decode()


def test_another_organisations_revision_is_a_404(client, viewer, other_org, make_runbook):
    foreign = make_runbook("ledger", organization=other_org).revisions.get()

    assert client.get(f"/runbooks/ledger/revisions/{foreign.pk}/").status_code == 404
    assert client.get("/runbooks/ledger/revisions/").status_code == 404


def test_list_queries_do_not_grow_with_runbooks(
    client, viewer, org, make_runbook, django_assert_max_num_queries
):
    for number in range(30):
        make_runbook(f"page-{number}", organization=org if number % 2 else None)

    with django_assert_max_num_queries(6):
        response = client.get("/runbooks/", {"q": "page", "tag": "api"})

    assert len(titles(response)) == 30


def test_page_queries_are_bounded(client, viewer, org, make_runbook, django_assert_max_num_queries):
    editor = get_user_model().objects.create_user("alice")
    make_runbook("api-5xx", organization=org, updated_by=editor)
    make_runbook("api-5xx")

    # One of them per "linked from" provider (alert rules, SLOs), whatever they list.
    with django_assert_max_num_queries(7):
        response = client.get("/runbooks/api-5xx/")

    assert response.status_code == 200


@pytest.mark.parametrize(
    "path",
    ["/runbooks/a%00/", "/runbooks/?q=%00", "/runbooks/?tag=x%00", "/runbooks/a%00/revisions/"],
)
def test_nul_in_the_url_is_a_400_page(client, viewer, path):
    response = client.get(path)

    assert response.status_code == 400
    assert "NUL character" in response.content.decode()
