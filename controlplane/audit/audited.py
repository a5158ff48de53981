"""Configuration models record their own changes: saves, deletions, bulk writes alike.

A model that a manager edits (a rule, a channel, an SLO…) inherits `Audited` and says
how in `audit = AuditSpec(...)`. Then every way Django writes it reaches the recorder
in the transaction of the write:

- `save()` takes the row as it was (under a row lock, so the diff is against what is
  overwritten), saves, and records `created` or `updated`;
- deletions, the object's own or cascaded from its organisation, are recorded from
  `post_delete`, which Django sends inside the deletion's transaction, with the row
  as `pre_delete` saw it, before the cascade wrote anything;
- `QuerySet.update()`, `bulk_update()` and `bulk_create()` record one event per row,
  and many-to-many changes record the ids that came and went.

What is left is raw SQL, which no application can see: the trail is for what the
control plane does, and the chain (chain.py) for what someone does to the trail.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from django.db import models, router, transaction
from django.db.models.expressions import Combinable

from controlplane.audit import diff as diffs
from controlplane.audit.diff import AuditSpec


class AuditError(RuntimeError):
    """A write the trail cannot record: refused, with what to do instead."""


def snapshot(obj: models.Model) -> dict[str, Any]:
    """The row's fields as attnames, people already as pseudonyms, as the model tells
    them (`Audited.audit_values`)."""
    from controlplane.audit.pseudonyms import people

    values = {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields}
    return obj.audit_values(people(values, type(obj).audit.people))


def _has_expressions(obj: models.Model) -> bool:
    return any(isinstance(getattr(obj, f.attname), Combinable) for f in obj._meta.concrete_fields)


def record_change(
    obj: Audited,
    action: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> Any:
    """Record one row's change; an update that changed no audited field records nothing."""
    from controlplane.audit.recorder import object_type_of, record

    spec = type(obj).audit
    change = diffs.changes(before, after, spec)
    if action == "updated" and not change:
        return None
    return record(
        obj.audit_action(action, before, after),
        organization_id=obj.audit_organization_id(),
        object_type=object_type_of(type(obj)),
        object_id=obj.pk,
        label=obj.audit_label(),
        diff=change,
    )


def _attnames(model: type[models.Model], names: Iterable[str]) -> set[str]:
    return {model._meta.get_field(name).attname for name in names}


class AuditedQuerySet(models.QuerySet):
    def _quiet(self, names: Iterable[str]) -> bool:
        names = _attnames(self.model, names)
        return bool(names) and names <= self.model.audit.quiet

    def update(self, **kwargs: Any) -> int:
        if self._quiet(kwargs):
            return super().update(**kwargs)
        with transaction.atomic(using=self.db):
            pks = list(self.values_list("pk", flat=True))
            if not pks:
                return 0
            base = self.model._base_manager.using(self.db)
            befores = {obj.pk: snapshot(obj) for obj in base.select_for_update().filter(pk__in=pks)}
            # The caller's own conditions again: a compare-and-set must still only
            # change the rows that match it once they are locked.
            count = models.QuerySet.update(self.filter(pk__in=pks), **kwargs)
            for obj in base.filter(pk__in=pks).order_by("pk"):
                record_change(obj, "updated", befores.get(obj.pk), snapshot(obj))
            return count

    def bulk_update(self, objs: Sequence[Any], fields: Sequence[str], **kwargs: Any) -> int:
        if self._quiet(fields):
            return super().bulk_update(objs, fields, **kwargs)
        objs = list(objs)
        with transaction.atomic(using=self.db):
            base = self.model._base_manager.using(self.db)
            pks = [obj.pk for obj in objs]
            befores = {obj.pk: snapshot(obj) for obj in base.select_for_update().filter(pk__in=pks)}
            # Through the plain queryset: Django's bulk_update writes with update(),
            # which here would record every row a second time.
            count = base.bulk_update(objs, fields, **kwargs)
            for obj in base.filter(pk__in=pks).order_by("pk"):
                record_change(obj, "updated", befores.get(obj.pk), snapshot(obj))
            return count

    def bulk_create(self, objs: Iterable[Any], *args: Any, **kwargs: Any) -> list[Any]:
        if kwargs.get("ignore_conflicts") or kwargs.get("update_conflicts"):
            raise AuditError(
                f"bulk_create of {self.model._meta.label} with conflicts ignored or updated "
                "cannot say which rows it wrote, so the audit trail cannot record them: "
                "save the rows one by one"
            )
        with transaction.atomic(using=self.db):
            created = super().bulk_create(objs, *args, **kwargs)
            for obj in created:
                if obj.pk is None:
                    raise AuditError(
                        f"bulk_create of {self.model._meta.label} returned no primary keys "
                        "on this database: save the rows one by one"
                    )
                record_change(obj, "created", None, snapshot(obj))
            return created


class Audited(models.Model):
    """Base of every configuration model: see the module's docstring."""

    audit: ClassVar[AuditSpec] = AuditSpec()

    objects = AuditedQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        update_fields = kwargs.get("update_fields")
        model = type(self)
        if update_fields is not None and set(update_fields):
            if _attnames(model, update_fields) <= model.audit.quiet:
                return super().save(*args, **kwargs)
        using = kwargs.get("using") or router.db_for_write(model, instance=self)
        with transaction.atomic(using=using):
            before = None
            if not self._state.adding and self.pk is not None:
                row = (
                    model._base_manager.using(using).select_for_update().filter(pk=self.pk).first()
                )
                before = snapshot(row) if row is not None else None
            super().save(*args, **kwargs)
            if _has_expressions(self):
                fresh = model._base_manager.using(using).get(pk=self.pk)
                after = snapshot(fresh)
            else:
                after = snapshot(self)
            if update_fields is not None and before is not None:
                # Only what was written: the rest of the instance may be stale.
                written = _attnames(model, update_fields)
                after = {**before, **{k: v for k, v in after.items() if k in written}}
            record_change(self, "created" if before is None else "updated", before, after)

    def audit_organization_id(self) -> int | None:
        path = type(self).audit.organization
        if path == "pk":
            return self.pk
        value: Any = self
        *hops, last = path.split("__")
        for hop in hops:
            value = getattr(value, hop, None)
            if value is None:
                return None
        return getattr(value, last, None)

    def audit_label(self) -> str:
        return str(self)

    def audit_values(self, values: dict[str, Any]) -> dict[str, Any]:
        """The snapshot as the diff compares it. A model whose field holds several things
        (a JSON configuration with secrets beside plain settings) splits it here into
        entries its AuditSpec can name; values are compared, never stored, before the
        spec hides them."""
        return values

    def audit_action(
        self, action: str, before: dict[str, Any] | None, after: dict[str, Any] | None
    ) -> str:
        """The action's name; a model may name a particular update (a token revoked)."""
        return action


def audited_models() -> list[type[Audited]]:
    from django.apps import apps

    return [model for model in apps.get_models() if issubclass(model, Audited)]


def _snapshot_before_deletion(sender: type[Audited], instance: Audited, **_: Any) -> None:
    # Taken before the deletion writes anything: a cascade removes the rows without
    # signals (a deleted user's pseudonym) and clears references before post_delete.
    instance._audit_deleting = snapshot(instance)


def _record_deletion(sender: type[Audited], instance: Audited, **_: Any) -> None:
    before = instance.__dict__.pop("_audit_deleting", None)
    record_change(instance, "deleted", before or snapshot(instance), None)


def _record_m2m(
    sender: Any, instance: Any, action: str, reverse: bool, model: Any, pk_set: Any, **_: Any
) -> None:
    from controlplane.audit.recorder import object_type_of

    if action == "pre_clear":
        field = _m2m_field(sender)
        if field is not None and not reverse:
            instance._audit_cleared = list(
                getattr(instance, field.name).values_list("pk", flat=True)
            )
        return
    if action not in {"post_add", "post_remove", "post_clear"}:
        return
    field = _m2m_field(sender)
    if field is None:
        return
    if action == "post_clear":
        ids = list(getattr(instance, "_audit_cleared", []))
        action = "post_remove"
    else:
        ids = list(pk_set or [])
    if not ids:
        return
    owners: list[Any] = (
        [instance] if not reverse else list(field.model._base_manager.filter(pk__in=ids))
    )
    for owner in owners:
        if not isinstance(owner, Audited):
            continue
        changed = [instance.pk] if reverse else ids
        change = diffs.membership_change(
            field.name,
            added=changed if action == "post_add" else None,
            removed=changed if action == "post_remove" else None,
        )
        from controlplane.audit.recorder import record

        record(
            "updated",
            organization_id=owner.audit_organization_id(),
            object_type=object_type_of(type(owner)),
            object_id=owner.pk,
            label=owner.audit_label(),
            diff=change,
        )


def _m2m_field(through: Any) -> Any:
    for model in audited_models():
        for field in model._meta.local_many_to_many:
            if field.remote_field.through is through:
                return field
    return None


def _cleared_references(model: type[models.Model]) -> list[Any]:
    """The audited models' foreign keys to `model` that its deletion sets to NULL."""
    return [
        relation.field
        for relation in model._meta.related_objects
        if relation.on_delete is models.SET_NULL
        and not relation.many_to_many
        and isinstance(relation.related_model, type)
        and issubclass(relation.related_model, Audited)
    ]


def _record_cleared_references(sender: type[models.Model], instance: Any, **_: Any) -> None:
    """The rows whose reference a deletion clears: Django writes them with one UPDATE
    of its own (no save, no signal), inside the deletion's transaction, after this."""
    for field in _cleared_references(sender):
        referring = field.model._base_manager.filter(**{field.attname: instance.pk})
        for obj in referring.order_by("pk"):
            before = snapshot(obj)
            record_change(obj, "updated", before, {**before, field.attname: None})


def connect() -> None:
    """Called once from AuditConfig.ready(), when every model is known."""
    from django.apps import apps
    from django.db.models.signals import m2m_changed, post_delete, pre_delete

    # Only where a reference is cleared: a receiver costs a model Django's fast delete.
    for model in apps.get_models():
        if _cleared_references(model):
            pre_delete.connect(
                _record_cleared_references,
                sender=model,
                dispatch_uid=f"audit-cleared-{model._meta.label}",
            )
    for model in audited_models():
        pre_delete.connect(
            _snapshot_before_deletion,
            sender=model,
            dispatch_uid=f"audit-before-{model._meta.label}",
        )
        post_delete.connect(
            _record_deletion, sender=model, dispatch_uid=f"audit-{model._meta.label}"
        )
        for field in model._meta.local_many_to_many:
            m2m_changed.connect(
                _record_m2m,
                sender=field.remote_field.through,
                dispatch_uid=f"audit-m2m-{model._meta.label}-{field.name}",
            )
