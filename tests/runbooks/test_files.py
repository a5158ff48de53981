"""Front matter: what loads, and the message for what does not."""

from __future__ import annotations

import datetime

import pytest

from runbooks.files import FrontMatterError, parse
from tests.runbooks.samples import runbook_file


def test_a_well_formed_file_gives_its_fields_and_body():
    parsed = parse(runbook_file("api-5xx", body="## Symptoms\n\nErrors.\n"))

    meta = parsed.metadata
    assert (meta.slug, meta.title, meta.owner) == ("api-5xx", "Api 5xx", "platform-sre")
    assert meta.tags == ("api", "availability")
    assert meta.summary == "What to do about api-5xx."
    assert meta.reviewed_at == datetime.date(2026, 11, 27)
    assert parsed.body == "## Symptoms\n\nErrors.\n"


def test_reviewed_is_optional():
    assert parse(runbook_file("a", reviewed=None)).metadata.reviewed_at is None


def test_crlf_and_a_byte_order_mark_read_like_the_plain_file():
    plain = parse(runbook_file("api-5xx"))
    windows = parse("\ufeff" + runbook_file("api-5xx").replace("\n", "\r\n"))

    assert windows == plain
    assert windows.digest == plain.digest


def test_digest_changes_with_any_field():
    base = parse(runbook_file("a")).digest

    assert parse(runbook_file("a", owner="payments")).digest != base
    assert parse(runbook_file("a", tags="[api]")).digest != base
    assert parse(runbook_file("a", reviewed="2026-12-01")).digest != base
    assert parse(runbook_file("a", body="Other.\n")).digest != base


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("slug: a\n---\nbody", "line 1: expected '---'"),
        ("---\nslug: a\ntitle: x\nbody without end", "never closed"),
        ("---\nslug: a\ntitle: [unclosed\n---\nbody", "line 3: front matter is not valid YAML"),
        ("---\n- a\n- b\n---\nbody", "must be 'key: value' lines"),
        (runbook_file("a", owner=None), "missing owner"),
        (runbook_file("a", owner=None, summary=None), "missing owner, summary"),
        (runbook_file("a", titel="x"), "unknown front matter field titel"),
        (runbook_file("API_5xx"), "'slug' must be lowercase"),
        (runbook_file("a", tags="api"), "'tags' must be a list"),
        (runbook_file("a", tags="[api, Latency]"), "not 'Latency'"),
        (runbook_file("a", tags="[api, 'two words']"), "not 'two words'"),
        (runbook_file("a", reviewed="last week"), "'reviewed' must be a date"),
        (runbook_file("a", reviewed="2026-13-01"), "impossible value (month must be in 1..12)"),
        (runbook_file("a", title='""'), "'title' must be non-empty text"),
        (runbook_file("a", title="42"), "'title' must be non-empty text"),
        (runbook_file("a", summary='"' + "x" * 700 + '"'), "'summary' is 700 characters"),
        (runbook_file("a", body="\n\n  \n"), "no body after the front matter"),
    ],
)
def test_malformed_files_say_what_is_wrong(text, message):
    with pytest.raises(FrontMatterError) as raised:
        parse(text)

    assert message in str(raised.value)


def test_duplicate_tags_are_kept_once_in_order():
    assert parse(runbook_file("a", tags="[b, a, b]")).metadata.tags == ("b", "a")
