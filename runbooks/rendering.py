"""Markdown to safe HTML: markdown-it-py renders, nh3 removes whatever could run.

Runbook text is written by people with admin access and by pull requests, but it is
read by everyone on call; the sanitiser is the wall, not the author's good will.
The allow-list is explicit so that a newer nh3 with wider defaults changes nothing.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token
from mdit_py_plugins.anchors import anchors_plugin

# Bump when the Markdown options or the allow-list change: stored HTML made by an
# older version is re-rendered when shown (see Runbook.html).
VERSION = 1

HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
ALLOWED_TAGS = HEADINGS | set(
    "a abbr b blockquote br code dd del details dl dt em hr i img kbd li ol p pre s strong"
    " sub summary sup table tbody td tfoot th thead tr ul".split()
)
# Removed with everything inside them, not just unwrapped: their content is code or
# markup that would otherwise show up as stray text.
DROPPED_WITH_CONTENT = set(
    "script style iframe object embed noscript template svg math textarea select frameset"
    " noembed xmp".split()
)
ALLOWED_ATTRIBUTES = {
    **{heading: {"id"} for heading in HEADINGS},
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "abbr": {"title"},
    "code": {"class"},
    "ol": {"start"},
    "th": {"style"},
    "td": {"style"},
}
URL_SCHEMES = {"http", "https", "mailto"}
LANGUAGE_CLASS = re.compile(r"^language-[A-Za-z0-9_+-]{1,32}$")
REMOTE_IMAGE = re.compile(r"^https?://", re.IGNORECASE)


def _attribute_filter(tag: str, attribute: str, value: str) -> str | None:
    if tag == "code" and attribute == "class":
        # Fenced code says its language; keep that and nothing else.
        return value if LANGUAGE_CLASS.match(value) else None
    if tag == "img" and attribute == "src":
        # Images only from the web: no data: payloads, no relative paths into the app.
        return value if REMOTE_IMAGE.match(value.strip()) else None
    return value


_cleaner = nh3.Cleaner(
    tags=ALLOWED_TAGS,
    clean_content_tags=DROPPED_WITH_CONTENT,
    attributes=ALLOWED_ATTRIBUTES,
    attribute_filter=_attribute_filter,
    url_schemes=URL_SCHEMES,
    filter_style_properties={"text-align"},
    link_rel="noopener noreferrer",
    strip_comments=True,
)

_markdown = (
    MarkdownIt("commonmark", {"linkify": False, "typographer": False})
    .enable(["table", "strikethrough"])
    .use(anchors_plugin, min_level=1, max_level=6)
)


@dataclass(frozen=True)
class Section:
    id: str
    title: str


@dataclass(frozen=True)
class Rendered:
    html: str
    sections: list[Section] = field(default_factory=list)


def _plain_text(inline: Token) -> str:
    return "".join(
        child.content for child in inline.children or [] if child.type in {"text", "code_inline"}
    )


def sanitize(html: str) -> str:
    return _cleaner.clean(html)


def render_markdown(text: str) -> str:
    """Markdown (with tables, strikethrough and heading ids) to sanitised HTML."""
    return sanitize(_markdown.render(text))


def render_runbook(text: str) -> Rendered:
    """A runbook body as its page shows it, with its level-2 sections for the contents.

    A level-1 heading that opens the body is the document's title; the page prints the
    runbook's title in its place, so it is left out rather than shown twice.
    """
    tokens = _markdown.parse(text)
    if len(tokens) >= 3 and tokens[0].type == "heading_open" and tokens[0].tag == "h1":
        tokens = tokens[3:]
    sections = [
        Section(id=str(opening.attrGet("id")), title=_plain_text(inline))
        for opening, inline in itertools.pairwise(tokens)
        if opening.type == "heading_open" and opening.tag == "h2" and opening.attrGet("id")
    ]
    html = sanitize(_markdown.renderer.render(tokens, _markdown.options, {}))
    return Rendered(html=html, sections=sections)
