"""What an audit event says changed: pure functions over field values, no I/O.

Secrets never appear, not even masked in part: a diff says only that one changed.
Values that name a person (a name, an email, a chat id) are left out the same way;
user references arrive here already turned into pseudonyms by the recorder. Long text
(a runbook's body) is summarised by its length and a digest, so the trail stays small
and two versions can still be told apart.
"""

from __future__ import annotations

import datetime
import decimal
import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.utils.duration import duration_iso_string

SUMMARY_OVER = 500  # characters a text value may have before it is summarised


@dataclass(frozen=True)
class AuditSpec:
    """How a configuration model is audited. Field names are attnames (`policy_id`).

    - `secret`: credentials (tokens, key hashes, webhook URLs that carry a secret):
      the diff says "changed", never the value.
    - `personal`: values that name a person (name, email, phone, chat id): left out
      like secrets, so the trail never holds them.
    - `people`: user ids, recorded as the user's pseudonym.
    - `quiet`: state a task keeps on a configuration row (a token's last use): writing
      only these is not an edit and records nothing.
    - `organization`: the lookup from the model to its organisation's id, for
      querysets ("policy__organization_id"); "pk" for the organisation itself.
    - `skip`: fields never shown (timestamps the database keeps).
    """

    secret: frozenset[str] = frozenset()
    personal: frozenset[str] = frozenset()
    people: frozenset[str] = frozenset()
    quiet: frozenset[str] = frozenset()
    skip: frozenset[str] = frozenset({"created_at", "updated_at"})
    organization: str = "organization_id"
    summary_over: int = SUMMARY_OVER
    extra: Mapping[str, Any] = field(default_factory=dict)

    def hides(self, name: str) -> str | None:
        if name in self.secret:
            return "secret"
        if name in self.personal:
            return "personal"
        return None


def jsonable(value: Any) -> Any:
    """A field value as JSON holds it, the same way whatever the database gave back."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return (
            value if value == value and value not in (float("inf"), float("-inf")) else str(value)
        )
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return duration_iso_string(value)
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [jsonable(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, set | frozenset) else items
    return str(value)


def _shown(value: Any, spec: AuditSpec) -> Any:
    value = jsonable(value)
    text = value if isinstance(value, str) else None
    if text is not None and len(text) > spec.summary_over:
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        return {"summary": f"{len(text):,} characters", "sha256": digest}
    return value


def changes(
    before: Mapping[str, Any] | None, after: Mapping[str, Any] | None, spec: AuditSpec
) -> dict[str, dict[str, Any]]:
    """The diff between two snapshots of a row ({attname: value}).

    `before` None: a creation, every field given as "to". `after` None: a deletion,
    every field given as "from". Otherwise only the fields whose value changed.
    """
    names = sorted(set(before or {}) | set(after or {}))
    diff: dict[str, dict[str, Any]] = {}
    for name in names:
        if name in spec.skip:
            continue
        old = jsonable((before or {}).get(name))
        new = jsonable((after or {}).get(name))
        if before is not None and after is not None and old == new:
            continue
        hidden = spec.hides(name)
        if hidden:
            entry: dict[str, Any] = {hidden: True}
            if before is not None and after is not None:
                entry["changed"] = True
            else:
                entry["set"] = (new if after is not None else old) not in (None, "", [], {})
            diff[name] = entry
            continue
        entry = {}
        if before is not None:
            entry["from"] = _shown(old, spec)
        if after is not None:
            entry["to"] = _shown(new, spec)
        diff[name] = entry
    return diff


def membership_change(
    name: str, added: list[Any] | None = None, removed: list[Any] | None = None
) -> dict[str, dict[str, Any]]:
    """The diff of a many-to-many field: which related ids came and went."""
    entry: dict[str, Any] = {}
    if added:
        entry["added"] = sorted(jsonable(v) for v in added)
    if removed:
        entry["removed"] = sorted(jsonable(v) for v in removed)
    return {name: entry} if entry else {}
