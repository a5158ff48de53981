"""The one way an SLO is saved or deleted, whoever does it (admin, API, OpenSLO import).

Here the SLO's evaluation row is made due, so the board shows the edit's effect at the
next tick. The save or deletion records itself in the audit trail (audit/audited.py),
in the same transaction and in the name of `actor`.
"""

from __future__ import annotations

from django.db import DatabaseError, transaction
from django.utils import timezone

from controlplane.catalog.actors import Actor, acting
from controlplane.slo.models import SLO, SLOEvaluation


def save(slo: SLO, actor: Actor) -> SLO:
    """Save a checked SLO (see documents.apply, or the admin's form)."""
    from controlplane.slo.alerts import retire

    with transaction.atomic(), acting(actor):
        if slo.pk is None:
            slo.save()
        else:
            # The evaluator locks this row before it writes (evaluation._write): one of the
            # two goes first, and an evaluation that read the SLO before this edit then
            # keeps nothing of it (its alerts included).
            list(SLOEvaluation.objects.select_for_update().filter(slo_id=slo.pk))
            # An update, never an insert: an SLO deleted while this edit was made is not
            # brought back under its old id.
            try:
                with transaction.atomic():
                    slo.save(force_update=True)
            except DatabaseError:
                if SLO.objects.filter(pk=slo.pk).exists():
                    raise
                raise SLO.DoesNotExist(f"The SLO {slo.slug!r} was deleted meanwhile.") from None
        # Only the due time and the coverage: the evaluator alone writes the rest.
        evaluation, created = SLOEvaluation.objects.get_or_create(slo=slo)
        if not created:
            # And the coverage of the recordings is asked again: they carry the SLI's
            # revision, which the edit may have changed.
            SLOEvaluation.objects.filter(pk=evaluation.pk).update(
                due_at=timezone.now(), fast_path=False
            )
        # Nothing would resolve these later: a disabled SLO is not evaluated.
        if not slo.enabled:
            retire(slo, f"SLO {slo.slug} disabled", actor)
        else:
            for severity in ("page", "ticket"):
                if not getattr(slo, severity):
                    retire(slo, f"{severity} alerts turned off for this SLO", actor, severity)
    return slo


def delete(slo: SLO, actor: Actor) -> None:
    """Delete an SLO; its open alerts are resolved (SLO alerts keep no orphan open)."""
    from controlplane.slo.alerts import retire

    with transaction.atomic(), acting(actor):
        list(SLOEvaluation.objects.select_for_update().filter(slo_id=slo.pk))
        retire(slo, f"SLO {slo.slug} deleted", actor)
        slo.delete()
