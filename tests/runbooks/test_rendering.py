"""Hostile Markdown renders harmlessly; tables, code and anchors survive."""

from __future__ import annotations

import re
import time
from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runbooks.rendering import render_markdown, render_runbook

FORBIDDEN_TAGS = {
    "script", "style", "iframe", "object", "embed", "svg", "math", "form", "input", "button",
    "base", "meta", "link", "frame", "frameset", "textarea", "noscript", "template", "video",
    "audio", "source", "marquee",
}  # fmt: skip
SAFE_SCHEMES = {"http", "https", "mailto"}


class Elements(HTMLParser):
    """Every start tag of the output with its attributes, as a browser would parse them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, {name: value or "" for name, value in attrs}))

    handle_startendtag = handle_starttag


def elements(html: str) -> list[tuple[str, dict[str, str]]]:
    parser = Elements()
    parser.feed(html)
    parser.close()
    return parser.found


def url_scheme(url: str) -> str | None:
    # What a browser would take as the scheme: control characters and spaces are ignored.
    cleaned = re.sub(r"[\x00-\x20]", "", url).lower()
    match = re.match(r"^([a-z][a-z0-9+.-]*):", cleaned)
    return match.group(1) if match else None


def assert_harmless(html: str) -> None:
    for tag, attrs in elements(html):
        assert tag not in FORBIDDEN_TAGS, html
        for name, value in attrs.items():
            assert not name.startswith("on"), html
            assert name not in {"srcdoc", "formaction", "xlink:href", "action"}, html
            if name == "style":
                assert tag in {"th", "td"}, html
                assert re.fullmatch(r"text-align:\s*\w+;?", value), html
            if name in {"href", "src"}:
                scheme = url_scheme(value)
                assert scheme is None or scheme in SAFE_SCHEMES, html
            if tag == "img" and name == "src":
                assert url_scheme(value) in {"http", "https"}, html


HOSTILE = {
    "script tag": "<script>alert(1)</script>",
    "script mixed case": "<ScRiPt>alert(1)</sCrIpT>",
    "script unclosed": "<script>alert(1)",
    "script in paragraph": "Hello <script src=https://evil.example/x.js></script> world",
    "img onerror": "<img src=x onerror=alert(1)>",
    "img onerror quoted": '<img src="https://ok.example/a.png" onerror="alert(1)">',
    "javascript link": '<a href="javascript:alert(1)">click</a>',
    "javascript mixed case": '<a href="JaVaScRiPt:alert(1)">click</a>',
    "javascript entity": '<a href="jav&#x61;script:alert(1)">click</a>',
    "javascript decimal entity": '<a href="&#106;avascript:alert(1)">click</a>',
    "javascript tab": '<a href="java\tscript:alert(1)">click</a>',
    "javascript leading space": '<a href=" javascript:alert(1)">click</a>',
    "vbscript": '<a href="vbscript:msgbox(1)">click</a>',
    "data link": '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a>',
    "data image": '<img src="data:image/svg+xml,<svg onload=alert(1)>">',
    "markdown javascript link": "[x](javascript:alert(1))",
    "markdown javascript entity": "[x](jav&#x61;script:alert(1))",
    "markdown data link": "[x](data:text/html,<script>alert(1)</script>)",
    "markdown data image": "![x](data:image/png;base64,iVBORw0KGgo=)",
    "markdown reference link": "[x][evil]\n\n[evil]: javascript:alert(1)",
    "autolink javascript": "<javascript:alert(1)>",
    "iframe": '<iframe src="https://evil.example"></iframe>',
    "iframe srcdoc": '<iframe srcdoc="<script>alert(1)</script>"></iframe>',
    "svg onload": "<svg onload=alert(1)><circle r=10 /></svg>",
    "svg script": "<svg><script>alert(1)</script></svg>",
    "math": '<math><mtext><a href="javascript:alert(1)">x</a></mtext></math>',
    "object": '<object data="https://evil.example/x.swf"></object>',
    "embed": '<embed src="https://evil.example/x.swf">',
    "form": '<form action="https://evil.example"><input name=x><button>go</button></form>',
    "style tag": "<style>body { display: none }</style>",
    "style attribute": '<p style="position:fixed;top:0">cover</p>',
    "event on allowed tag": '<a href="https://ok.example" onclick="alert(1)">ok</a>',
    "event on heading": '<h2 id="x" onmouseover="alert(1)">Hi</h2>',
    "nested html": "<div><p><b><i><a href='javascript:alert(1)'><img src=x onerror=alert(1)>"
    "</a></i></b></p></div>",
    "unclosed tags": "<b><i><a href='https://ok.example'>text<table><tr><td>cell",
    "broken attribute": '<img src="x" onerror="alert(1)"',
    "comment trick": "<!-- <script>alert(1)</script> -->",
    "cdata": "<![CDATA[<script>alert(1)</script>]]>",
    "meta refresh": '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    "base href": '<base href="https://evil.example/">',
    "link stylesheet": '<link rel="stylesheet" href="https://evil.example/x.css">',
    "noscript": '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
    "template": "<template><script>alert(1)</script></template>",
    "textarea breakout": "<textarea></textarea><script>alert(1)</script>",
    "html in table cell": "| a |\n|---|\n| <img src=x onerror=alert(1)> |",
    "html in heading": "## <img src=x onerror=alert(1)> Triage",
    "formaction": '<button formaction="javascript:alert(1)">x</button>',
    "null byte": '<a href="java\x00script:alert(1)">x</a>',
}


@pytest.mark.parametrize("markdown", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_markdown_renders_harmlessly(markdown):
    assert_harmless(render_markdown(markdown))
    assert_harmless(render_runbook(markdown).html)


def test_script_content_is_dropped_not_shown_as_text():
    html = render_markdown("before <script>window.__pwned=1</script> after")

    assert "__pwned" not in html
    assert "before" in html
    assert "after" in html


def test_iframe_and_style_contents_are_dropped():
    html = render_markdown('<iframe src="https://evil.example">inside</iframe><style>p{}</style>x')

    assert "inside" not in html
    assert "p{}" not in html


def test_event_handler_is_removed_but_the_element_kept():
    html = render_markdown('<a href="https://ok.example/" onclick="alert(1)">ok</a>')

    assert elements(html) == [
        ("p", {}),
        ("a", {"href": "https://ok.example/", "rel": "noopener noreferrer"}),
    ]


@pytest.mark.parametrize(
    "markdown",
    ["[x](javascript:alert(1))", '<a href="jav&#x61;script:alert(1)">x</a>'],
)
def test_javascript_links_lose_their_target(markdown):
    html = render_markdown(markdown)

    assert not [attrs for tag, attrs in elements(html) if "href" in attrs]


def test_data_image_is_dropped_and_remote_image_kept():
    html = render_markdown("![a](data:image/png;base64,AAAA) ![b](https://img.example/b.png)")

    assert [attrs.get("src") for tag, attrs in elements(html) if tag == "img"] == [
        None,
        "https://img.example/b.png",
    ]


def test_tables_survive_with_alignment():
    html = render_markdown("| metric | value |\n|:---|---:|\n| p95 | 0.2 s |\n")

    tags = [tag for tag, _ in elements(html)]
    assert tags == ["table", "thead", "tr", "th", "th", "tbody", "tr", "td", "td"]
    assert '<td style="text-align:right">0.2 s</td>' in html


def test_fenced_code_is_escaped_and_keeps_its_language():
    html = render_markdown("```promql\n<script>alert(1)</script> > 0.01\n```\n")

    assert html == (
        '<pre><code class="language-promql">&lt;script&gt;alert(1)&lt;/script&gt; &gt; 0.01\n'
        "</code></pre>\n"
    )


def test_hostile_code_language_class_is_dropped():
    html = render_markdown('```" onmouseover="alert(1)\nx\n```\n')

    assert elements(html) == [("pre", {}), ("code", {})]


def test_headings_get_anchors_that_section_links_use():
    html = render_markdown("## Mitigation\n\nSee [triage](#triage).\n\n## Triage\n\n## Triage\n")

    assert '<h2 id="mitigation">Mitigation</h2>' in html
    assert '<a href="#triage" rel="noopener noreferrer">triage</a>' in html
    # A repeated heading gets its own id, so both are reachable.
    ids = [attrs["id"] for tag, attrs in elements(html) if tag == "h2"]
    assert len(ids) == len(set(ids)) == 3


def test_ordinary_links_and_mail_survive_with_rel():
    html = render_markdown("[docs](https://prometheus.io/docs/) and [mail](mailto:sre@example.com)")

    assert [attrs for tag, attrs in elements(html) if tag == "a"] == [
        {"href": "https://prometheus.io/docs/", "rel": "noopener noreferrer"},
        {"href": "mailto:sre@example.com", "rel": "noopener noreferrer"},
    ]


def test_linkify_is_off():
    assert "<a" not in render_markdown("see https://example.com now")


def test_strikethrough_and_lists_render():
    html = render_markdown("~~old~~ new\n\n- one\n- two\n")

    assert "<s>old</s>" in html
    assert html.count("<li>") == 2


def test_very_long_line_renders_whole_and_quickly():
    line = "x" * 200_000
    started = time.perf_counter()

    html = render_markdown(f"{line}\n\n<script>alert(1)</script>")

    assert time.perf_counter() - started < 2
    assert line in html
    assert "<script" not in html


@pytest.mark.parametrize(
    "markdown", [">" * 5000 + " deep", "[" * 20000 + "x", "*" * 20000, "- " * 3000 + "item"]
)
def test_pathological_nesting_terminates(markdown):
    started = time.perf_counter()

    assert_harmless(render_markdown(markdown))
    assert time.perf_counter() - started < 5


FRAGMENTS = st.sampled_from([
    "<script>", "</script>", "<img src=x onerror=alert(1)>", "javascript:", "JaVa&#x53;cript:",
    "<a href=\"", "<a href='", "\">", "'>", "</a>", "[x](", ")", "![i](", "data:text/html,",
    "<svg onload=alert(1)>", "<iframe>", "<style>", "<!--", "-->", "<", ">", "\"", "'", "&",
    "&#", "\n", "\n\n", "```", "`", "| a |\n|---|\n", "# ", "## ", "> ", "- ", " ", "alert(1)",
    "on", "error=", "<b>", "</b>", "<math>", "<table>", "<td>", "\t", "\x00",
])  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(FRAGMENTS, max_size=40).map("".join))
def test_any_mix_of_hostile_fragments_renders_harmlessly(markdown):
    assert_harmless(render_markdown(markdown))


def test_runbook_rendering_drops_the_title_heading_and_lists_sections():
    rendered = render_runbook(
        "# Title\n\nIntro.\n\n## Symptoms\n\n## `kubectl` Triage\n\n### Sub\n"
    )

    assert "<h1" not in rendered.html
    assert [(s.id, s.title) for s in rendered.sections] == [
        ("symptoms", "Symptoms"),
        ("kubectl-triage", "kubectl Triage"),
    ]


def test_runbook_rendering_keeps_a_level_one_heading_that_is_not_first():
    assert "<h1" in render_runbook("Intro.\n\n# Later\n").html
