"""Reading the trail: who may read which events, how they read, and refused edits.

The admin (controlplane/audit/admin.py, history.py) and the API (controlplane/api/audit.py)
ask the same questions here, so the two cannot disagree on who sees what.

The trail of an organisation is for its managers, as its members and its API tokens are
(catalog.admin): it says who changed what and when, people's edits included. Events of
no organisation (chain 0: erasures, shared runbooks, accounts) are for superusers.

`diff_rows` and `actor_text` are pure: a stored diff or actor spec in, words out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import transaction
from django.db.models import QuerySet
from django.utils.dateparse import parse_duration

from controlplane.audit import pseudonyms
from controlplane.audit.models import AuditEvent
from controlplane.catalog import actors, tenancy
from controlplane.promql.durations import format_duration
from observability import context

REFUSED = "audit.refused"
# Past this many characters a value is cut in a page (the event keeps it whole).
SHOWN_LENGTH = 300
# How diff.jsonable stores a duration (Django's duration_iso_string): "P0DT00H05M00S".
STORED_DURATION = re.compile(r"^P\d+DT\d{2}H\d{2}M\d{2}(\.\d{1,6})?S$")


# --- who reads which events -------------------------------------------------------------


def trail_organizations(user: AbstractBaseUser | AnonymousUser) -> set[int] | None:
    """The organisations whose trail the user may read: those they manage; None: all."""
    return tenancy.organization_ids(user, tenancy.MANAGE_ROLES)


def may_read(user: AbstractBaseUser | AnonymousUser, organization_id: int | None) -> bool:
    allowed = trail_organizations(user)
    return allowed is None or (organization_id is not None and organization_id in allowed)


def scoped(queryset: QuerySet, allowed: set[int] | None) -> QuerySet:
    """Events of the allowed organisations (None: every event, chain 0 included)."""
    return tenancy.scope(queryset, allowed, "organization")


def event_id(raw: Any) -> int | None:
    """An event's id from a URL, or None for what no event could have."""
    text = str(raw).strip()
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        return None
    return int(text)


# --- attempts on the trail ----------------------------------------------------------------


def record_attempt(
    what: str, target: Any = None, may_read: Callable[[int | None], bool] | None = None
) -> AuditEvent:
    """Record an attempt to have an audit event `what` ("changed", "deleted", "added").

    In the chain of the event it named, when there is one and the caller may read it
    (`may_read`), so that organisation's managers see it; else in the caller's
    organisation's (a token's), else chain 0: nobody writes into another organisation's
    trail by naming one of its events. In a transaction of its own: the refusal that
    follows cannot take the record with it.
    """
    from controlplane.audit.recorder import object_type_of, record

    pk = event_id(target) if target is not None else None
    organization_id = None
    if pk is not None:
        organization_id = (
            AuditEvent.objects.filter(pk=pk).values_list("organization_id", flat=True).first()
        )
        if may_read is None or not may_read(organization_id):
            organization_id = None
    if organization_id is None:
        bound = context.current().organization_id
        if bound and str(bound).isdigit():
            organization_id = int(bound)
    named = f" #{pk}" if pk is not None else "s"
    with transaction.atomic():
        return record(
            REFUSED,
            organization_id=organization_id,
            object_type=object_type_of(AuditEvent),
            object_id=pk if pk is not None else "",
            label=f"an attempt to have audit event{named} {what}",
            diff={"attempt": what},
        )


# --- how an event reads --------------------------------------------------------------------


@dataclass(frozen=True)
class DiffRow:
    """One line of a diff as a page shows it: a field, what it was, what it became.

    `before`/`after` are None where the event has no such side (a creation has no
    "from"); `note` replaces both when the diff says something else: a secret changed,
    ids added to a list, or a plain value (a receipt's range, a refusal's attempt).
    """

    field: str
    before: str | None = None
    after: str | None = None
    note: str = ""


def value_text(value: Any) -> str:
    """A diff value in words: text as it is, a summary as a summary, the rest as JSON."""
    if isinstance(value, Mapping) and set(value) == {"summary", "sha256"}:
        return f"{value['summary']} (sha256 {value['sha256']}…)"
    if value is None or value == "":
        return "(empty)"
    if isinstance(value, str) and STORED_DURATION.match(value):
        duration = parse_duration(value)
        if isinstance(duration, timedelta):
            return format_duration(duration)  # as the forms take it: "5m", "1h30m"
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    if len(text) > SHOWN_LENGTH:
        return text[:SHOWN_LENGTH] + "…"
    return text


def _hidden_note(kind: str, entry: Mapping[str, Any]) -> str:
    what = "secret" if kind == "secret" else "personal data (not recorded)"
    if entry.get("changed"):
        return f"{what} changed"
    if "set" in entry:
        return f"{what}: {'set' if entry['set'] else 'empty'}"
    return what


def _entry_row(name: str, entry: Any) -> DiffRow:
    if not isinstance(entry, Mapping):
        return DiffRow(name, note=value_text(entry))
    for kind in ("secret", "personal"):
        if entry.get(kind) is True:
            return DiffRow(name, note=_hidden_note(kind, entry))
    if "added" in entry or "removed" in entry:
        parts = [
            f"{verb} {', '.join(value_text(v) for v in entry[verb])}"
            for verb in ("added", "removed")
            if entry.get(verb)
        ]
        return DiffRow(name, note="; ".join(parts))
    if "from" in entry or "to" in entry:
        return DiffRow(
            name,
            before=value_text(entry["from"]) if "from" in entry else None,
            after=value_text(entry["to"]) if "to" in entry else None,
        )
    return DiffRow(name, note=value_text(dict(entry)))


def diff_rows(diff: Any) -> list[DiffRow]:
    """The rows of a stored diff, field by field in the order stored (sorted)."""
    if not isinstance(diff, Mapping):
        return [DiffRow("value", note=value_text(diff))] if diff else []
    return [_entry_row(str(name), entry) for name, entry in diff.items()]


def user_pseudonym(spec: str) -> str | None:
    kind, _, ident = spec.partition(":")
    return ident if kind == "user" and ident and ident != pseudonyms.ERASED else None


def actor_text(spec: str, usernames: Mapping[str, str], others: Mapping[str, str]) -> str:
    """A stored actor in words: a person by username while their pseudonym still links
    to them, else by the pseudonym, said to be erased; any other actor by its label."""
    kind, _, ident = spec.partition(":")
    if kind == "user":
        if ident in usernames:
            return usernames[ident]
        if not ident or ident == pseudonyms.ERASED:
            return pseudonyms.ERASED
        return f"{ident} ({pseudonyms.ERASED})"
    return others.get(spec, spec)


def actor_names(specs: Iterable[str]) -> dict[str, str]:
    """`actor_text` for many specs: one query for the people, one for the tokens."""
    specs = set(specs)
    people = {p for p in (user_pseudonym(spec) for spec in specs) if p}
    usernames = pseudonyms.names(people) if people else {}
    others = actors.labels(s for s in specs if not s.startswith("user:"))
    return {spec: actor_text(spec, usernames, others) for spec in specs}
