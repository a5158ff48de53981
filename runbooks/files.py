"""Runbook files: a YAML front-matter block, then the Markdown body.

Parsing is pure (text in, values out) and strict: a typo in a field name is an
error, not a silently ignored key, because a runbook that loads with the wrong
owner or no tags is worse than one that does not load at all.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import yaml

from runbooks.content import content_digest, is_slug, normalize_body

REQUIRED = ("slug", "title", "tags", "owner", "summary")
OPTIONAL = ("reviewed",)
MAX_TEXT = 512 * 1024
MAX_TITLE = 200
MAX_SUMMARY = 600
MAX_OWNER = 100
MAX_TAGS = 20


class FrontMatterError(ValueError):
    """The file cannot be loaded; the message says what is wrong and where."""


@dataclass(frozen=True)
class Metadata:
    slug: str
    title: str
    summary: str
    tags: tuple[str, ...]
    owner: str
    reviewed_at: datetime.date | None = None


@dataclass(frozen=True)
class RunbookFile:
    metadata: Metadata
    body: str

    @property
    def digest(self) -> str:
        m = self.metadata
        return content_digest(
            title=m.title,
            summary=m.summary,
            body=self.body,
            tags=m.tags,
            owner=m.owner,
            reviewed_at=m.reviewed_at,
        )


def _split(text: str) -> tuple[str, str, int]:
    """(front matter, body, line number where the body starts)."""
    lines = text.split("\n")
    if not lines or lines[0].strip() != "---":
        raise FrontMatterError("line 1: expected '---' opening the front matter")
    for number, line in enumerate(lines[1:], start=2):
        if line.strip() in {"---", "..."}:
            return "\n".join(lines[1 : number - 1]), "\n".join(lines[number:]), number + 1
    raise FrontMatterError("the front matter is never closed: add a line '---' after it")


def _string(meta: dict, key: str, limit: int) -> str:
    value = meta[key]
    if not isinstance(value, str) or not value.strip():
        raise FrontMatterError(f"'{key}' must be non-empty text, got {value!r}")
    value = " ".join(value.split())
    if len(value) > limit:
        raise FrontMatterError(f"'{key}' is {len(value)} characters long; at most {limit}")
    return value


def _tags(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise FrontMatterError(f"'tags' must be a list such as [api, latency], got {value!r}")
    if len(value) > MAX_TAGS:
        raise FrontMatterError(f"'tags' has {len(value)} entries; at most {MAX_TAGS}")
    bad = [tag for tag in value if not is_slug(tag)]
    if bad:
        raise FrontMatterError(
            f"'tags' must be lowercase words joined by hyphens, not {', '.join(map(repr, bad))}"
        )
    return tuple(dict.fromkeys(value))


def _date(value: object) -> datetime.date | None:
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, datetime.date):
        return value
    if isinstance(value, str):
        try:
            return datetime.date.fromisoformat(value)
        except ValueError:
            pass
    raise FrontMatterError(f"'reviewed' must be a date written YYYY-MM-DD, got {value!r}")


def parse(text: str) -> RunbookFile:
    """Split and check a runbook file; FrontMatterError says what is wrong."""
    if len(text) > MAX_TEXT:
        raise FrontMatterError(f"the file is {len(text)} characters long; at most {MAX_TEXT}")
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    front, body, body_line = _split(text)
    try:
        meta = yaml.safe_load(front)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 2}: " if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise FrontMatterError(f"{where}front matter is not valid YAML ({problem})") from None
    except ValueError as error:
        # PyYAML turns 2026-13-01 into a date and fails doing so.
        raise FrontMatterError(f"front matter holds an impossible value ({error})") from None
    if not isinstance(meta, dict):
        raise FrontMatterError("the front matter must be 'key: value' lines")
    missing = [key for key in REQUIRED if key not in meta]
    if missing:
        raise FrontMatterError(f"front matter is missing {', '.join(missing)}")
    unknown = sorted(str(key) for key in meta if key not in REQUIRED + OPTIONAL)
    if unknown:
        allowed = ", ".join(REQUIRED + OPTIONAL)
        raise FrontMatterError(
            f"unknown front matter field {', '.join(unknown)} (known: {allowed})"
        )
    if not is_slug(meta["slug"]):
        raise FrontMatterError(
            f"'slug' must be lowercase letters, digits and hyphens, got {meta['slug']!r}"
        )
    body = normalize_body(body)
    if not body:
        raise FrontMatterError(f"line {body_line}: the runbook has no body after the front matter")
    metadata = Metadata(
        slug=meta["slug"],
        title=_string(meta, "title", MAX_TITLE),
        summary=_string(meta, "summary", MAX_SUMMARY),
        tags=_tags(meta["tags"]),
        owner=_string(meta, "owner", MAX_OWNER),
        reviewed_at=_date(meta.get("reviewed")),
    )
    return RunbookFile(metadata=metadata, body=body)
