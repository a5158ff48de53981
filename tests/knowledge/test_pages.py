"""/docs/ and /docs/<path>/: signed-in readers, the repository's docs/ only, a 404 for the rest."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from controlplane.catalog.models import Role
from controlplane.knowledge import library, shelf

pytestmark = pytest.mark.django_db


@pytest.fixture
def reader(client, member, org):
    user = member(org, Role.VIEWER)
    client.force_login(user)
    return user


@pytest.mark.parametrize("path", ["/docs/", "/docs/observability/runbooks/", "/docs/nothing/"])
def test_anonymous_visitors_are_sent_to_log_in(client, path):
    response = client.get(path)

    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={path}"


def test_the_index_lists_every_document_under_docs(client, reader):
    response = client.get("/docs/")

    assert response.status_code == 200
    body = response.content.decode()
    for url, title in [
        ("/docs/observability/", "Knowledge base"),
        ("/docs/observability/runbooks/", "Alert catalogue"),
        ("/docs/observability/objectives/", "Objectives"),
        ("/docs/slos/", "SLOs: budgets, burn rates, history"),
        ("/docs/jobs/", "Job monitors"),
    ]:
        assert f'href="{url}"' in body
        assert title in body
    assert '<a href="/docs/">Docs</a>' in body  # the nav link


def test_the_alert_catalogue_renders_with_contents_and_rewritten_links(client, reader):
    response = client.get("/docs/observability/runbooks/")

    assert response.status_code == 200
    body = response.content.decode()
    assert "<h1>Alert catalogue" in body
    assert '<nav class="toc no-print" aria-label="Contents">' in body
    assert '<a href="#sloburn_rate">slo.burn_rate</a>' in body
    assert 'href="/runbooks/api-5xx/"' in body
    assert 'href="/docs/slos/#multiwindow-multi-burn-rate-alerts"' in body
    assert 'href="/docs/observability/objectives/"' in body
    # Links into the repository that are not pages are not links in the browser.
    assert ".md" not in "".join(part.split('"', 1)[0] for part in body.split('href="')[1:])


def test_a_folder_shows_its_readme_and_a_top_level_document_renders(client, reader):
    index = client.get("/docs/observability/")
    slos = client.get("/docs/slos/")

    assert index.status_code == slos.status_code == 200
    assert index.context["document"].path == "docs/observability/README.md"
    assert slos.context["document"].path == "docs/slos.md"
    assert 'href="/docs/jobs/"' in slos.content.decode()


@pytest.mark.parametrize(
    "path",
    [
        "/docs/nothing/",
        "/docs/observability/nothing/",
        "/docs/slos.md/",
        "/docs/../README/",
        "/docs/%2e%2e/README/",
        "/docs/..%2fREADME/",
        "/docs/observability/..%2f..%2fREADME/",
        "/docs/%2fetc%2fpasswd/",
        "/docs//etc/passwd/",
        "/docs/observability%2f..%2f..%2fmanage/",
        "/docs/%252e%252e/README/",
    ],
)
def test_unknown_and_escaping_addresses_are_the_404_page(client, reader, path):
    response = client.get(path)

    assert response.status_code == 404
    assert "Not found" in response.content.decode()
    assert "Observability control plane" not in response.content.decode()  # not README.md


def test_a_nul_byte_is_refused_before_any_file_is_looked_for(client, reader):
    assert client.get("/docs/slos%00/").status_code == 400


def test_a_symbolic_link_out_of_the_folder_is_not_followed(tmp_path: Path):
    root = tmp_path / "docs"
    root.mkdir()
    secret = tmp_path / "secret.md"
    secret.write_text("# Secret\n\nsettings\n")
    (root / "guide.md").write_text("# Guide\n\n[secret](secret.md)\n")
    os.symlink(secret, root / "secret.md")

    assert shelf.find(root, "guide").title == "Guide"
    assert shelf.find(root, "secret") is None
    assert [entry.path for entry in shelf.catalogue(root)] == ["docs/guide.md"]


def test_a_file_that_is_not_text_is_not_a_page(tmp_path: Path):
    root = tmp_path / "docs"
    root.mkdir()
    (root / "binary.md").write_bytes(b"\xff\xfe\x00garbage")
    (root / "huge.md").write_text("# Huge\n" + "x" * (shelf.LARGEST + 1))

    assert shelf.find(root, "binary") is None
    assert shelf.find(root, "huge") is None


def test_the_catalogue_puts_each_folders_index_first(tmp_path: Path):
    root = tmp_path / "docs"
    (root / "observability").mkdir(parents=True)
    for name in ["b.md", "observability/z.md", "observability/README.md", "a.md", "bad name.md"]:
        (root / name).write_text(f"# {name}\n")

    assert [entry.url for entry in shelf.catalogue(root, library.Urls())] == [
        "/docs/a/",
        "/docs/b/",
        "/docs/observability/",
        "/docs/observability/z/",
    ]


def test_the_slo_board_links_the_objectives(client, reader):
    body = client.get("/slos/").content.decode()

    assert 'href="/docs/observability/objectives/"' in body
