"""What a runbook says, independent of where it is stored: normalised text and its digest."""

from __future__ import annotations

import datetime
import hashlib
import json
import re
from collections.abc import Iterable

SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


def is_slug(value: object) -> bool:
    return isinstance(value, str) and len(value) <= 64 and bool(SLUG_RE.match(value))


def normalize_body(text: str) -> str:
    """One spelling of the same Markdown, whether it came from a file or a browser textarea.

    Browsers submit CRLF and editors leave trailing blank lines; without this an
    untouched admin save would look like an edit to sync_runbooks.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.strip("\n").rstrip() + "\n" if text.strip() else ""


def content_digest(
    *,
    title: str,
    summary: str,
    body: str,
    tags: Iterable[str],
    owner: str,
    reviewed_at: datetime.date | None,
) -> str:
    """sha256 of everything a runbook file sets; equal digests mean nothing to sync."""
    document = {
        "title": title,
        "summary": summary,
        "body": normalize_body(body),
        "tags": list(tags),
        "owner": owner,
        "reviewed_at": reviewed_at.isoformat() if reviewed_at else None,
    }
    encoded = json.dumps(document, sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(encoded).hexdigest()
