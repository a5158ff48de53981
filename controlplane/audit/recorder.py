"""The one recorder of the audit trail: every change, acknowledgement and delivery.

Call it inside the transaction of what it records: the event commits or vanishes with
it. Configuration models record themselves through `audited.Audited`; the alert
lifecycle, paging and the token, erasure and retention code call `record()`.

Who: the actor given, else the one the request or task named (`catalog.actors`), a
user by pseudonym. Which request and trace: the `observability` context.

What is stored is what the MAC covers, value for value: the time in UTC and the diff in
the form both databases give back (`stored_form`), so an event read back verifies.
"""

from __future__ import annotations

import contextvars
import datetime
import decimal
import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connections, router, transaction
from django.utils import timezone
from django.utils.crypto import salted_hmac

from controlplane.audit import chain
from controlplane.audit.diff import jsonable
from controlplane.audit.models import AuditEvent
from controlplane.audit.pseudonyms import actor_spec
from controlplane.catalog import actors
from controlplane.catalog.actors import Actor
from observability import context, tracing

log = logging.getLogger(__name__)

LABEL_LENGTH = 200
# How long a refusal waits for the record of the attempt written on a connection of
# its own (an insert that takes no lock the caller can hold).
APART_SECONDS = 10.0

# Set only by `make bench` (bench/audit.py) through `_paused()`.
_pause: contextvars.ContextVar[bool] = contextvars.ContextVar("audit_paused", default=False)


@contextmanager
def _paused() -> Iterator[None]:
    """Record nothing inside the block: for `make bench` alone, which measures what the
    trail costs against the same work without it.

    A context variable, not a setting: the trail cannot be turned off in production.
    No configuration, environment variable or request reaches it; only code that calls
    this in its own thread or task records nothing, and only until the block ends.
    """
    token = _pause.set(True)
    try:
        yield
    finally:
        _pause.reset(token)


def chain_key() -> bytes:
    """AUDIT_CHAIN_KEY, else one derived from SECRET_KEY: a key the database never holds.

    The derived key is text (64 hex digits), so that before a SECRET_KEY rotation it can
    be pinned as AUDIT_CHAIN_KEY (`derived_chain_key()`) and what was sealed still
    verifies.
    """
    explicit = getattr(settings, "AUDIT_CHAIN_KEY", "")
    return (explicit or derived_chain_key()).encode()


def derived_chain_key() -> str:
    return salted_hmac("controlplane.audit.chain", "key", algorithm="sha256").hexdigest()


def object_type_of(model: Any) -> str:
    return model._meta.label_lower


def stored_form(value: Any) -> Any:
    """A diff as the database gives it back, so its MAC verifies once read.

    JSON as `diff.jsonable` makes it, and floats as PostgreSQL's jsonb returns them:
    it keeps numbers as decimals and writes them without exponent, so 1e+16 comes
    back as the integer 10000000000000000, and -0.0 as 0.0. Floats written without
    exponent come back as the same float.
    """
    return _numbers_as_stored(jsonable(value))


def _numbers_as_stored(value: Any) -> Any:
    if isinstance(value, float):
        if value == 0:
            return 0.0
        text = repr(value)
        return int(decimal.Decimal(text)) if "e+" in text else value
    if isinstance(value, dict):
        return {key: _numbers_as_stored(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_numbers_as_stored(item) for item in value]
    return value


def utc(at: datetime.datetime) -> datetime.datetime:
    """A time as the database gives it back: aware, in UTC (naive means TIME_ZONE)."""
    if timezone.is_naive(at):
        at = timezone.make_aware(at)
    return at.astimezone(datetime.UTC)


def record(
    action: str,
    *,
    organization_id: int | None,
    object_type: str,
    object_id: Any = "",
    label: str = "",
    diff: Mapping[str, Any] | None = None,
    actor: Actor | str | None = None,
    at: Any = None,
) -> AuditEvent:
    """Write one audit event in the current transaction, sealed right after it commits.

    `actor` may be a stored spec already pseudonymised (a receipt written by a task).
    """
    if _pause.get():  # the bench's baseline: nothing written, nothing sealed
        return AuditEvent(action=action, object_type=object_type)
    event = _write(
        action,
        organization_id=organization_id,
        object_type=object_type,
        object_id=object_id,
        label=label,
        diff=diff,
        actor=actor,
        at=at,
    )
    schedule_seal(event.chain)
    return event


def _write(
    action: str,
    *,
    organization_id: int | None,
    object_type: str,
    object_id: Any,
    label: str,
    diff: Mapping[str, Any] | None,
    actor: Actor | str | None,
    at: Any,
    using: str | None = None,
) -> AuditEvent:
    if isinstance(actor, str):
        spec = actor
    else:
        spec = actor_spec(actor or actors.current())
    organization_id = int(organization_id) if organization_id is not None else None
    ids = context.current()
    event = AuditEvent(
        chain=organization_id or 0,
        organization_id=organization_id,
        at=utc(at or timezone.now()),
        actor=spec,
        action=action,
        object_type=object_type,
        object_id=str(object_id if object_id is not None else ""),
        object_label=str(label or "")[:LABEL_LENGTH],
        diff=stored_form(dict(diff or {})),
        request_id=ids.request_id or "",
        trace_id=tracing.current_trace_id() or "",
    )
    event.mac = chain.content_mac(chain_key(), event.content())
    event.save(force_insert=True, using=using)
    return event


class _Seal:
    """An on-commit callback sealing one chain; one per chain per transaction."""

    def __init__(self, chain_id: int) -> None:
        self.chain = chain_id
        # What Django names a robust callback by when it fails: without it, logging the
        # failure raises, and the callbacks after this one never run.
        self.__qualname__ = f"the seal of audit chain {chain_id}"

    def __call__(self) -> None:
        from controlplane.audit.sealing import seal

        seal(self.chain)


def schedule_seal(chain_id: int, using: str | None = None) -> None:
    using = using or router.db_for_write(AuditEvent)
    connection = connections[using]
    # Django drops the callbacks of a savepoint rolled back, so a callback found here
    # still covers this event: it is inside every savepoint that callback is.
    if any(
        isinstance(callback, _Seal) and callback.chain == chain_id
        for _, callback, _ in connection.run_on_commit
    ):
        return
    # Robust: a seal that fails (the database went away after the commit) must not
    # turn a saved change into an error page; beat's backstop seals it later.
    transaction.on_commit(_Seal(chain_id), using=using, robust=True)


def record_regardless(
    action: str,
    *,
    organization_id: int | None,
    object_type: str,
    object_id: Any = "",
    label: str = "",
    diff: Mapping[str, Any] | None = None,
) -> AuditEvent | None:
    """Record an event that stands whatever becomes of the caller's transaction: the
    record of an attempt that is about to be refused with an exception.

    Outside a transaction it commits at once. Inside one on PostgreSQL, a connection
    of its own writes and commits it (an insert, which waits for no lock the caller
    holds); the seal follows the caller's commit, or beat's backstop after a rollback.
    SQLite has one writer at a time, and the caller's transaction holds it: there the
    record joins the caller's transaction and goes if it is rolled back. Returns None
    if the record could not be written (logged): the refusal still stands.
    """
    using = router.db_for_write(AuditEvent)
    connection = connections[using]
    try:
        fields: dict[str, Any] = {
            "organization_id": organization_id,
            "object_type": object_type,
            "object_id": object_id,
            "label": label,
            "diff": diff,
            # The caller's connection sees the person it acts for; a connection of its
            # own might not yet (a user made in the same transaction).
            "actor": actor_spec(actors.current()),
            "at": None,
        }
        if connection.in_atomic_block and connection.vendor == "postgresql":
            event = _write_apart(action, fields, using)
            schedule_seal(event.chain, using=using)
            return event
        with transaction.atomic(using=using):
            return record(action, **fields)
    except (DatabaseError, TimeoutError):
        log.exception("the record of a refused attempt on the audit trail could not be written")
        return None


def _write_apart(action: str, fields: dict[str, Any], using: str) -> AuditEvent:
    """`_write` on a connection of its own, in a thread (Django's connections are per
    thread), with the caller's request, actor and trace context."""
    written: list[AuditEvent] = []
    errors: list[BaseException] = []
    caller = contextvars.copy_context()

    def write() -> None:
        try:
            written.append(caller.run(_write, action, using=using, **fields))
        except BaseException as error:  # re-raised in the caller
            errors.append(error)
        finally:
            connections[using].close()

    thread = threading.Thread(target=write, name="audit-record-apart", daemon=True)
    thread.start()
    thread.join(APART_SECONDS)
    if errors:
        raise errors[0]
    if not written:
        raise TimeoutError(f"the audit record took longer than {APART_SECONDS} s")
    return written[0]


def record_refusal(what: str) -> None:
    """An attempt to change or delete an audit event, itself recorded (see
    `record_regardless`: the refusal's exception cannot take the record with it)."""
    ids = context.current()
    organization_id = None
    if ids.organization_id and str(ids.organization_id).isdigit():
        organization_id = int(ids.organization_id)
    record_regardless(
        "audit.refused",
        organization_id=organization_id,
        object_type=object_type_of(AuditEvent),
        label=f"an attempt to have audit events {what}",
        diff={"attempt": what},
    )
