"""The trail is append-only: on PostgreSQL the database refuses (a trigger, migration
0002), everywhere the application refuses (AuditEventQuerySet, AuditEvent), and an
attempt through the application leaves an `audit.refused` event that stays."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.db import DatabaseError, connection, transaction

from controlplane.audit import sealing
from controlplane.audit.models import AuditEvent, AuditRefused
from controlplane.catalog import actors
from controlplane.catalog.actors import Actor
from observability import context
from tests.audit.helpers import TABLE, record_some, sealed_chain, verify
from tests.services import require_postgresql

REFUSED = "audit.refused"


def row(event: AuditEvent) -> tuple:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT object_label, actor, seq, prev_hash, hash FROM {TABLE} WHERE id = %s",
            [event.pk],
        )
        return cursor.fetchone()


def refused_by_database(sql: str, params: list, match: str) -> None:
    """`sql` fails with the trigger's error; its savepoint is rolled back."""
    with pytest.raises(DatabaseError, match=match), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(sql, params)


# --- PostgreSQL: the trigger -------------------------------------------------------------


@pytest.fixture
def sealed_events(org):
    require_postgresql()
    record_some(org, 3)
    return sealed_chain(org)[-3:]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("what", "sql"),
    [
        ("its content", f"UPDATE {TABLE} SET object_label = 'changed' WHERE id = %s"),
        ("its seal", f"UPDATE {TABLE} SET seq = seq + 1000 WHERE id = %s"),
        ("its hash", f"UPDATE {TABLE} SET hash = repeat('0', 64) WHERE id = %s"),
        ("nothing, by rewriting it as it is", f"UPDATE {TABLE} SET actor = actor WHERE id = %s"),
    ],
)
def test_postgresql_refuses_an_update_of_a_sealed_event(sealed_events, what, sql):
    event = sealed_events[1]
    before = row(event)

    refused_by_database(sql, [event.pk], "audit events cannot be changed")

    assert row(event) == before


@pytest.mark.django_db
def test_postgresql_refuses_a_delete_and_the_retention_setting_lets_it_through(sealed_events):
    event = sealed_events[1]
    before = row(event)

    refused_by_database(
        f"DELETE FROM {TABLE} WHERE id = %s",
        [event.pk],
        "audit events cannot be deleted: only the retention job removes them",
    )
    assert row(event) == before
    # Set for another transaction, or at the session's level by a role that may not:
    # nothing but this transaction's own SET LOCAL counts.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL controlplane.audit_retention = 'off'")
    refused_by_database(f"DELETE FROM {TABLE} WHERE id = %s", [event.pk], "cannot be deleted")

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL controlplane.audit_retention = 'on'")
        cursor.execute(f"DELETE FROM {TABLE} WHERE id = %s", [event.pk])
        cursor.execute("SET LOCAL controlplane.audit_retention = 'off'")

    assert not AuditEvent.objects.filter(pk=event.pk).exists()
    refused_by_database(
        f"DELETE FROM {TABLE} WHERE id = %s", [sealed_events[0].pk], "cannot be deleted"
    )


@pytest.mark.django_db
def test_postgresql_moves_a_chain_head_forward_only(sealed_events, org):
    head = f"SELECT seq, hash FROM audit_chainhead WHERE chain = {org.pk}"
    with connection.cursor() as cursor:
        cursor.execute(head)
        before = cursor.fetchone()

    # Whoever deletes the newest events cannot move the head back to hide it.
    refused_by_database(
        "UPDATE audit_chainhead SET seq = seq - 1 WHERE chain = %s", [org.pk], "only moves"
    )
    refused_by_database(
        "UPDATE audit_chainhead SET hash = repeat('0', 64) WHERE chain = %s", [org.pk], "only"
    )
    refused_by_database(
        "DELETE FROM audit_chainhead WHERE chain = %s", [org.pk], "cannot be deleted"
    )
    with connection.cursor() as cursor:
        cursor.execute(head)
        assert cursor.fetchone() == before

    record_some(org, 1)
    sealed_chain(org)
    with connection.cursor() as cursor:
        cursor.execute(head)
        assert cursor.fetchone()[0] == before[0] + 1


@pytest.mark.django_db
def test_an_event_made_with_the_id_of_another_is_never_an_update_of_it(org):
    [event] = record_some(org, 1)
    before = row(event)
    forged = AuditEvent(
        pk=event.pk, chain=event.chain, actor="user:p_0", action="x", object_type="y", mac="0"
    )

    with pytest.raises(DatabaseError), transaction.atomic():
        forged.save()

    assert row(event) == before


@pytest.mark.django_db
def test_postgresql_allows_the_seal_once_and_nothing_else_on_an_unsealed_event(org):
    require_postgresql()
    [event] = record_some(org, 1)
    seal = f"UPDATE {TABLE} SET seq = 999, prev_hash = %s, hash = %s WHERE id = %s"

    refused_by_database(
        f"UPDATE {TABLE} SET seq = 999, object_label = 'x' WHERE id = %s",
        [event.pk],
        "cannot be changed",
    )
    refused_by_database(
        f"UPDATE {TABLE} SET object_label = 'x' WHERE id = %s", [event.pk], "cannot be changed"
    )
    with connection.cursor() as cursor:
        cursor.execute(seal, ["a" * 64, "b" * 64, event.pk])
    refused_by_database(seal, ["c" * 64, "d" * 64, event.pk], "cannot be changed")

    assert row(event) == (event.object_label, event.actor, 999, "a" * 64, "b" * 64)


# --- everywhere: the application ---------------------------------------------------------

ATTEMPTS: dict[str, tuple[str, Callable[[AuditEvent], object]]] = {
    "save() of an event": ("changed", lambda e: (setattr(e, "object_label", "x"), e.save())),
    "save() with update_fields": ("changed", lambda e: e.save(update_fields=["actor"])),
    "delete() of an event": ("deleted", lambda e: e.delete()),
    "update() of a queryset": (
        "changed",
        lambda e: AuditEvent.objects.filter(pk=e.pk).update(object_label="x"),
    ),
    "delete() of a queryset": ("deleted", lambda e: AuditEvent.objects.filter(pk=e.pk).delete()),
    "delete() of every event": ("deleted", lambda e: AuditEvent.objects.all().delete()),
    "bulk_update()": (
        "changed",
        lambda e: AuditEvent.objects.bulk_update([e], ["object_label"]),
    ),
    "bulk_create() overwriting on conflict": (
        "changed",
        lambda e: AuditEvent.objects.bulk_create(
            [e], update_conflicts=True, unique_fields=["id"], update_fields=["object_label"]
        ),
    ),
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("name", list(ATTEMPTS))
def test_the_application_refuses_and_records_the_attempt(org, name):
    what, attempt = ATTEMPTS[name]
    record_some(org, 2)
    event = AuditEvent.objects.filter(chain=org.pk).order_by("-seq").first()
    before = row(event)
    count = AuditEvent.objects.count()

    with pytest.raises(AuditRefused, match=f"audit events cannot be {what}"):
        attempt(event)

    assert row(event) == before
    [refusal] = AuditEvent.objects.filter(action=REFUSED)
    assert AuditEvent.objects.count() == count + 1
    assert refusal.diff == {"attempt": what}
    assert refusal.object_type == "audit.auditevent"
    assert refusal.seq is not None, "sealed after its own commit"
    out, error = verify()
    assert error is None, out


@pytest.mark.django_db(transaction=True)
def test_the_refusal_names_who_tried_and_lands_in_their_organisations_chain(org, member):
    user = member(org, "manager")
    [event] = record_some(org, 1)

    with (
        context.scope(organization_id=org.pk, request_id="req-tamper-1"),
        actors.acting(Actor.user(user)),
        pytest.raises(AuditRefused),
    ):
        event.delete()

    refusal = AuditEvent.objects.get(action=REFUSED)
    assert (refusal.chain, refusal.organization_id) == (org.pk, org.pk)
    assert refusal.request_id == "req-tamper-1"
    assert refusal.actor == f"user:{user.pseudonym.value}"


@pytest.mark.django_db(transaction=True)
def test_on_postgresql_the_record_survives_the_rollback_of_the_attempts_transaction(org):
    require_postgresql()
    [event] = record_some(org, 1)

    with pytest.raises(AuditRefused), transaction.atomic():  # noqa: PT012
        record_some(org, 1, action="gone with the rollback")
        AuditEvent.objects.filter(pk=event.pk).update(object_label="x")

    [refusal] = AuditEvent.objects.filter(action=REFUSED)
    assert not AuditEvent.objects.filter(action="gone with the rollback").exists()
    assert refusal.seq is None, "the transaction that would have sealed it was rolled back"
    assert sealing.seal_all() == 1
    out, error = verify("--org", org.slug)
    assert error is None, out


@pytest.mark.django_db(transaction=True)
def test_a_refusal_in_a_transaction_that_commits_is_sealed_with_it(org):
    [event] = record_some(org, 1)

    with transaction.atomic():
        try:
            event.delete()
        except AuditRefused:
            pass  # the caller carries on, and commits
        record_some(org, 1, action="after the refusal")

    refusal = AuditEvent.objects.get(action=REFUSED)
    assert refusal.seq is not None
    assert AuditEvent.objects.get(action="after the refusal").seq is not None
    assert AuditEvent.objects.filter(pk=event.pk).exists()


@pytest.mark.django_db
def test_the_retention_job_alone_may_delete_through_the_application(org):
    from controlplane.audit.models import purging

    [event] = record_some(org, 1)

    with purging(), transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL controlplane.audit_retention = 'on'")
        deleted, _ = AuditEvent.objects.filter(pk=event.pk).delete()
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL controlplane.audit_retention = 'off'")

    assert deleted == 1
    assert not AuditEvent.objects.filter(action=REFUSED).exists()
