"""The knowledge base's pure rules: addresses to files, links to pages."""

from __future__ import annotations

import pytest

from controlplane.knowledge import library
from runbooks.rendering import sanitize

DOC = "docs/observability/runbooks.md"


@pytest.mark.parametrize(
    ("address", "files"),
    [
        ("slos", ["docs/slos.md", "docs/slos/README.md"]),
        (
            "observability/runbooks",
            ["docs/observability/runbooks.md", "docs/observability/runbooks/README.md"],
        ),
        (
            "observability/README",
            ["docs/observability/README.md", "docs/observability/README/README.md"],
        ),
        ("..", []),
        ("../README", []),
        ("observability/../../manage", []),
        ("/etc/passwd", []),
        ("observability//runbooks", []),
        ("slos.md", []),
        (".hidden", []),
        ("%2e%2e", []),
        ("slos\n", []),
        ("a\\b", []),
        ("slos\x00", []),
        ("", []),
        ("/".join(["a"] * 9), []),
    ],
)
def test_an_address_names_files_under_docs_only(address, files):
    assert library.files_for(address) == files


@pytest.mark.parametrize(
    ("path", "url"),
    [
        ("docs/slos.md", "/docs/slos/"),
        ("docs/observability/runbooks.md", "/docs/observability/runbooks/"),
        ("docs/observability/README.md", "/docs/observability/"),
        ("docs/README.md", "/docs/"),
    ],
)
def test_a_file_has_one_page(path, url):
    assert library.url_for(path) == url


@pytest.mark.parametrize(
    ("href", "target"),
    [
        ("#sloburn_rate", "#sloburn_rate"),
        ("objectives.md", "/docs/observability/objectives/"),
        ("objectives.md#live-pages", "/docs/observability/objectives/#live-pages"),
        ("../slos.md#rpo-and-rto", "/docs/slos/#rpo-and-rto"),
        ("./README.md", "/docs/observability/"),
        ("../observability/", "/docs/observability/"),
        ("../../runbooks/pages/api-5xx.md", "/runbooks/api-5xx/"),
        ("../../runbooks/pages/api-5xx.md#triage", "/runbooks/api-5xx/#triage"),
        ("/slos/backup-rpo/", "/slos/backup-rpo/"),
        (
            "https://sre.google/workbook/alerting-on-slos/",
            "https://sre.google/workbook/alerting-on-slos/",
        ),
        ("mailto:sre@example.com", "mailto:sre@example.com"),
        # The repository's other files are not served: plain text.
        ("../../ROADMAP.md", None),
        ("../../controlplane/slo/maths.py", None),
        ("../../runbooks/pages/", None),
        ("../../../../etc/passwd", None),
        ("diagram.png", None),
        ("?page=2", None),
    ],
)
def test_links_go_to_pages_or_become_text(href, target):
    assert library.link_target(href, DOC) == target


def test_a_top_level_document_links_its_neighbours_and_the_knowledge_base():
    assert library.link_target("jobs.md", "docs/slos.md") == "/docs/jobs/"
    assert library.link_target("observability/runbooks.md", "docs/slos.md") == (
        "/docs/observability/runbooks/"
    )
    assert library.link_target("../runbooks/pages/audit-job-failure.md", "docs/audit.md") == (
        "/runbooks/audit-job-failure/"
    )
    assert library.link_target("../README.md", "docs/audit.md") is None


def test_prefixes_come_from_the_caller():
    urls = library.Urls(docs="/kb/", runbooks="/rb/")

    assert library.link_target("objectives.md", DOC, urls) == "/kb/observability/objectives/"
    assert library.link_target("../../runbooks/pages/x.md", DOC, urls) == "/rb/x/"


def test_rewriting_keeps_the_text_and_the_sanitiser_attributes():
    html = sanitize(
        '<p><a href="../slos.md#windows" title="SLOs">the SLOs</a>, '
        '<a href="../../controlplane/slo/maths.py"><code>maths.py</code></a> and '
        '<a href="https://example.com/?a=1&amp;b=2">out</a></p>'
    )

    rewritten = library.rewrite_links(html, DOC)

    assert '<a href="/docs/slos/#windows" title="SLOs" rel="noopener noreferrer">the SLOs</a>' in (
        rewritten
    )
    assert "<code>maths.py</code> and" in rewritten
    assert "maths.py</a>" not in rewritten
    assert 'href="https://example.com/?a=1&amp;b=2"' in rewritten


def test_a_rendered_document_has_its_title_contents_and_no_script():
    text = (
        "# The `api.5xx` alert\n\nSee [objectives](objectives.md).\n\n"
        "<script>alert(1)</script>\n\n## Condition\n\nx\n\n## Drill\n\n"
        "[evil](javascript:alert(1))\n"
    )

    document = library.render(text, DOC)

    assert document.title == "The api.5xx alert"
    assert [section.id for section in document.sections] == ["condition", "drill"]
    assert 'href="/docs/observability/objectives/"' in document.html
    assert "<script" not in document.html
    assert 'href="javascript' not in document.html
    assert "<h1" not in document.html


def test_a_document_without_a_heading_is_named_after_its_file():
    assert library.title_of("Some text.\n# Later\n", "docs/on-call_notes.md") == "On call notes"
