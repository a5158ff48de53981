"""Shared helpers of the audit trail's tests: reading events, sealing, verifying,
and playing a tamperer who has the database owner's rights but not the chain key."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core.management import CommandError, call_command
from django.db import connection, models, transaction
from django.db.backends.utils import CursorWrapper

from controlplane.audit import recorder, sealing
from controlplane.audit.models import AuditEvent
from controlplane.catalog.models import Organization

TABLE = AuditEvent._meta.db_table


def chain_of(organization: Organization | None) -> int:
    return organization.pk if organization is not None else 0


def events_of(obj: models.Model) -> list[AuditEvent]:
    """The events recorded about one object, oldest first."""
    return list(
        AuditEvent.objects.filter(
            object_type=recorder.object_type_of(type(obj)), object_id=str(obj.pk)
        ).order_by("id")
    )


def sealed_chain(organization: Organization | None) -> list[AuditEvent]:
    """The organisation's chain (chain 0 for None) once sealed, in sequence order."""
    chain = chain_of(organization)
    sealing.seal(chain)
    return list(AuditEvent.objects.filter(chain=chain).order_by("seq", "id"))


def record_some(organization: Organization | None, count: int, **fields: Any) -> list[AuditEvent]:
    """`count` events about made-up objects (of no model, so that `events_of` a real
    object never sees them) of the organisation, recorded in the current transaction
    (sealed after it commits, or by `sealed_chain`)."""
    fields.setdefault("object_type", "tests.widget")
    return [
        recorder.record(
            fields.pop("action", "updated"),
            organization_id=organization.pk if organization is not None else None,
            object_id=number,
            label=f"widget {number}",
            diff={"name": {"from": f"old {number}", "to": f"new {number}"}},
            **fields,
        )
        for number in range(1, count + 1)
    ]


@contextmanager
def seal_dropped() -> Iterator[None]:
    """A transaction that commits as a process dying right after its commit would:
    the seal it scheduled never runs (beat's backstop has to)."""
    with transaction.atomic():
        yield
        connection.run_on_commit.clear()


def verify(*args: str) -> tuple[str, CommandError | None]:
    """`manage.py audit_verify` with `args`: what it printed, and its error if it failed."""
    out = io.StringIO()
    try:
        call_command("audit_verify", *args, stdout=out)
    except CommandError as error:
        return out.getvalue(), error
    return out.getvalue(), None


@contextmanager
def tamperer() -> Iterator[CursorWrapper]:
    """A cursor with the table owner's rights: on PostgreSQL the append-only trigger
    does not fire for what it runs (session_replication_role = replica, set for its
    own savepoint and put back after, so the rest of the test has the trigger)."""
    postgresql = connection.vendor == "postgresql"
    with transaction.atomic(), connection.cursor() as cursor:
        if postgresql:
            cursor.execute("SET LOCAL session_replication_role = replica")
        yield cursor
        if postgresql:
            cursor.execute("SET LOCAL session_replication_role = origin")


def column_value(name: str, value: Any) -> Any:
    """A value as raw SQL on this database takes it for the event's field `name`."""
    field = AuditEvent._meta.get_field(name)
    return field.get_db_prep_save(value, connection)


def raw_update(event: AuditEvent, **values: Any) -> None:
    """Change an event's columns with raw SQL, as someone with database access would."""
    names = list(values)
    assignments = ", ".join(
        f"{connection.ops.quote_name(AuditEvent._meta.get_field(n).column)} = %s" for n in names
    )
    with tamperer() as cursor:
        cursor.execute(
            f"UPDATE {TABLE} SET {assignments} WHERE id = %s",
            [*(column_value(n, values[n]) for n in names), event.pk],
        )


def raw_delete(event: AuditEvent) -> None:
    with tamperer() as cursor:
        cursor.execute(f"DELETE FROM {TABLE} WHERE id = %s", [event.pk])


def raw_insert(**values: Any) -> AuditEvent:
    """A row written straight into the table, without the recorder or the key."""
    names = list(values)
    columns = ", ".join(
        connection.ops.quote_name(AuditEvent._meta.get_field(n).column) for n in names
    )
    marks = ", ".join("%s" for _ in names)
    with tamperer() as cursor:
        cursor.execute(
            f"INSERT INTO {TABLE} ({columns}) VALUES ({marks})",
            [column_value(n, values[n]) for n in names],
        )
    return AuditEvent.objects.get(mac=values["mac"])


def forged(like: AuditEvent, **values: Any) -> dict[str, Any]:
    """The columns of a made-up event in `like`'s chain, with a made-up MAC and hash."""
    return {
        "chain": like.chain,
        "organization_id": like.organization_id,
        "at": like.at,
        "actor": like.actor,
        "action": "deleted",
        "object_type": like.object_type,
        "object_id": like.object_id,
        "object_label": like.object_label,
        "diff": {},
        "request_id": "",
        "trace_id": "",
        "mac": "f0" * 32,
        "seq": None,
        "prev_hash": "",
        "hash": "",
        **values,
    }


def retention_delete(sql: str, params: list[Any]) -> None:
    """Delete rows as the retention job may: on PostgreSQL with the setting the
    append-only trigger lets through, for this savepoint only."""
    postgresql = connection.vendor == "postgresql"
    with transaction.atomic(), connection.cursor() as cursor:
        if postgresql:
            cursor.execute("SET LOCAL controlplane.audit_retention = 'on'")
        cursor.execute(sql, params)
        if postgresql:
            cursor.execute("SET LOCAL controlplane.audit_retention = 'off'")


def status(error: CommandError | None) -> int:
    """The exit status `verify()`'s command would have had."""
    return 0 if error is None else error.returncode
