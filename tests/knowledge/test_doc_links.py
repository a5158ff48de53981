"""Every relative link of the documentation points at a file of the repository, and an
anchor into a Markdown file at one of its headings."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from django.conf import settings
from markdown_it import MarkdownIt

from runbooks.rendering import render_markdown

REPOSITORY = Path(settings.BASE_DIR)
DOCUMENTS = sorted(
    [
        *(REPOSITORY / "docs").rglob("*.md"),
        *(REPOSITORY / name for name in ("README.md", "CHANGELOG.md", "ROADMAP.md")),
    ]
)
_parser = MarkdownIt("commonmark").enable(["table", "strikethrough"])
_ids = re.compile(r'<h[1-6] id="([^"]+)"')


def links(text: str) -> list[str]:
    """The hrefs of the Markdown's links and images (not of its code)."""
    found = []
    for token in _parser.parse(text):
        for child in token.children or []:
            if child.type == "link_open":
                found.append(str(child.attrGet("href")))
            elif child.type == "image":
                found.append(str(child.attrGet("src")))
    return found


def anchors(file: Path) -> set[str]:
    return set(_ids.findall(render_markdown(file.read_text())))


def test_every_document_the_brief_names_exists():
    names = {path.relative_to(REPOSITORY).as_posix() for path in DOCUMENTS}

    assert {
        "ROADMAP.md",
        "CHANGELOG.md",
        "README.md",
        "docs/observability/README.md",
        "docs/observability/runbooks.md",
        "docs/observability/objectives.md",
    } <= names


@pytest.mark.parametrize(
    "document", DOCUMENTS, ids=[str(d.relative_to(REPOSITORY)) for d in DOCUMENTS]
)
def test_relative_links_point_at_files_that_exist(document: Path):
    broken = []
    for href in links(document.read_text()):
        parts = urlsplit(href)
        if parts.scheme or parts.netloc or href.startswith("/"):
            continue  # the web, or a page of the running site
        target = (document.parent / unquote(parts.path)).resolve() if parts.path else document
        if not target.is_relative_to(REPOSITORY.resolve()) or not target.exists():
            broken.append(f"{href}: no such file")
        elif parts.fragment and target.suffix == ".md" and parts.fragment not in anchors(target):
            broken.append(f"{href}: no heading with the anchor #{parts.fragment}")

    assert broken == [], f"{document.relative_to(REPOSITORY)}: {broken}"


def test_the_checker_sees_a_broken_link(tmp_path: Path):
    page = tmp_path / "page.md"
    page.write_text("[gone](gone.md) `[code](nope.md)`\n\n```\n[block](nope.md)\n```\n")

    assert links(page.read_text()) == ["gone.md"]
