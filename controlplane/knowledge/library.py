"""The knowledge base's pure rules: which file an address shows, and where a link goes.

`/docs/<path>/` shows the repository's `docs/<path>.md` (or `docs/<path>/README.md`, a
folder's index), and nothing else: an address is a few plain words joined by slashes, so
`..`, an absolute path or an encoded slash never reaches the file system (Django decodes
`%2e%2e` before routing; a dot is simply not a letter of a word here).

The files are written to be read in the repository too, so they link each other by
relative path (`../slos.md#rpo-and-rto`). In the browser such a link must go to the
page, not to a file the server does not serve: `rewrite_links` points links between
`.md` files of docs/ at their /docs/ pages and runbook files at their runbook pages, and
turns links to any other file of the repository into plain text.

Rendering is the runbooks app's (`runbooks.rendering`): one Markdown dialect and one
sanitiser for every page written by people. The rewritten HTML goes through that
sanitiser again, so no rewrite can let anything through that it would refuse.
"""

from __future__ import annotations

import html
import posixpath
import re
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlsplit

from runbooks.rendering import Section, render_runbook, sanitize

ROOT = "docs"
SUFFIX = ".md"
INDEX = "README"
# One word of an address: what file and folder names under docs/ are made of.
SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")
DEEPEST = 8
RUNBOOK_FILE = re.compile(r"^runbooks/pages/([a-z0-9][a-z0-9-]*)\.md$")

_ANCHOR = re.compile(r"<a\s([^>]*)>(.*?)</a>", re.DOTALL)
_HREF = re.compile(r'\bhref="([^"]*)"')
_TITLE = re.compile(r"^#\s+(.+?)\s*#*\s*$")


@dataclass(frozen=True)
class Urls:
    """Where the pages live: the knowledge base's and the runbooks' URL prefixes."""

    docs: str = "/docs/"
    runbooks: str = "/runbooks/"


# The addresses the site routes them at (controlplane/urls.py).
SITE = Urls()


@dataclass(frozen=True)
class Document:
    path: str  # repository-relative, e.g. docs/observability/runbooks.md
    title: str
    html: str
    sections: list[Section] = field(default_factory=list)


def is_address(url_path: str) -> bool:
    """Whether `url_path` (between /docs/ and the final slash) is words joined by slashes."""
    segments = url_path.split("/")
    return 0 < len(segments) <= DEEPEST and all(SEGMENT.fullmatch(s) for s in segments)


def files_for(url_path: str) -> list[str]:
    """The repository files /docs/<url_path>/ may show, the first that exists wins:
    docs/<path>.md, then docs/<path>/README.md. Empty for an address that is refused."""
    if not is_address(url_path):
        return []
    return [f"{ROOT}/{url_path}{SUFFIX}", f"{ROOT}/{url_path}/{INDEX}{SUFFIX}"]


def url_for(path: str, urls: Urls = SITE) -> str:
    """The page of a repository file under docs/: docs/slos.md -> /docs/slos/, a
    folder's README.md -> the folder's page, docs/README.md -> the index."""
    inside = path.removeprefix(f"{ROOT}/").removesuffix(SUFFIX)
    segments = inside.split("/")
    if segments[-1] == INDEX:
        segments = segments[:-1]
    if not segments:
        return urls.docs
    return urls.docs + "/".join(quote(s) for s in segments) + "/"


def link_target(href: str, path: str, urls: Urls = SITE) -> str | None:
    """Where a link of the file at `path` goes in the browser; None: show it as plain text.

    In-page anchors, absolute URLs and site paths (`/slos/`) stay as written. A relative
    link is read from the file's folder: a Markdown file or folder of docs/ goes to its
    page, a runbook file to its runbook page; anything else in the repository (code,
    the README at the root) is not served, so it is not a link.
    """
    parts = urlsplit(href)
    if parts.scheme or parts.netloc or href.startswith(("#", "/")) or not href.strip():
        return href
    if not parts.path:  # "?query" alone: nothing of ours
        return None
    target = posixpath.normpath(posixpath.join(posixpath.dirname(path), unquote(parts.path)))
    anchor = f"#{parts.fragment}" if parts.fragment else ""
    if target == ".." or target.startswith("../"):
        return None
    runbook = RUNBOOK_FILE.match(target)
    if runbook:
        return f"{urls.runbooks}{runbook.group(1)}/{anchor}"
    inside = target.removeprefix(f"{ROOT}/")
    if target == ROOT:
        return urls.docs + anchor
    if inside == target:
        return None
    if target.endswith(SUFFIX) and is_address(inside.removesuffix(SUFFIX)):
        return url_for(target, urls) + anchor
    if is_address(inside) and (parts.path.endswith("/") or "." not in inside):
        return url_for(f"{target}/{INDEX}{SUFFIX}", urls) + anchor
    return None


def rewrite_links(rendered: str, path: str, urls: Urls = SITE) -> str:
    """Sanitised HTML of the file at `path` with its links pointed as `link_target` says."""

    def rewrite(found: re.Match) -> str:
        attributes, text = found.group(1), found.group(2)
        href = _HREF.search(attributes)
        if href is None:
            return found.group(0)
        target = link_target(html.unescape(href.group(1)), path, urls)
        if target is None:
            return text
        written = f'href="{html.escape(target, quote=True)}"'
        return f"<a {attributes[: href.start()]}{written}{attributes[href.end() :]}>{text}</a>"

    return _ANCHOR.sub(rewrite, rendered)


def title_of(text: str, path: str) -> str:
    """The level-1 heading the file opens with, else its name."""
    for line in text.lstrip("\ufeff").splitlines():
        if line.strip():
            found = _TITLE.match(line.strip())
            if found:
                return found.group(1).replace("`", "")
            break
    name = posixpath.basename(path).removesuffix(SUFFIX)
    return name.replace("-", " ").replace("_", " ").capitalize()


def render(text: str, path: str, urls: Urls = SITE) -> Document:
    """A docs/ file as its page shows it: title, sanitised body with links rewritten,
    and its level-2 sections for the contents."""
    rendered = render_runbook(text)
    body = sanitize(rewrite_links(rendered.html, path, urls))
    return Document(path=path, title=title_of(text, path), html=body, sections=rendered.sections)
