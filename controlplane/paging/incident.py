"""An alert as paging sees it, for the pages and the admin: the escalation it runs on,
the notifications it has sent, and switching it to its policy's current version.

The pages read through `paging_of` (two queries whatever the ledger holds) and change
through `reapply_current`, which takes the escalation's row lock, as every writer of
an escalation does (engine.handle, engine.escalate_due), and records the switch on the
alert's timeline in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from controlplane.alerting import lifecycle
from controlplane.alerting.models import Alert
from controlplane.catalog.actors import Actor
from controlplane.paging import engine
from controlplane.paging.escalation import PolicyError
from controlplane.paging.models import Escalation, Notification

# The alert page lists this many notifications, the latest; the API's ledger
# (GET /api/v1/notifications/?alert=<id>) pages through them all.
LATEST_SHOWN = 50


@dataclass(frozen=True)
class AlertPaging:
    escalation: Escalation | None  # None: nobody is paged (no policy), or not yet
    notifications: list[Notification]  # the latest LATEST_SHOWN, newest first
    more: bool  # older notifications than those listed exist

    @property
    def policy_deleted(self) -> bool:
        return self.escalation is not None and self.escalation.policy_id is None

    @property
    def current_version(self) -> int | None:
        """The policy's version now; None without an escalation or once it is deleted."""
        if self.escalation is None or self.escalation.policy is None:
            return None
        return self.escalation.policy.version

    @property
    def outdated(self) -> bool:
        """The policy has been edited since the alert's escalation took its snapshot."""
        current = self.current_version
        return current is not None and current != self.escalation.policy_version


def paging_of(alert: Alert) -> AlertPaging:
    escalation = Escalation.objects.select_related("policy").filter(alert_id=alert.pk).first()
    rows = list(
        Notification.objects.filter(alert_id=alert.pk).order_by("-created_at", "-pk")[
            : LATEST_SHOWN + 1
        ]
    )
    return AlertPaging(escalation, rows[:LATEST_SHOWN], len(rows) > LATEST_SHOWN)


class CannotReapply(Exception):
    """Why an alert's escalation was left as it was: a sentence for its reader."""


@dataclass(frozen=True)
class Reapplied:
    previous: int
    current: int
    written: int  # notifications of the new version due at once


def reapply_current(alert: Alert, actor: Actor) -> Reapplied:
    """Switch the alert's escalation to its policy's current version, with an event
    "version X → Y" on its timeline by `actor`; CannotReapply, changing nothing, when
    there is nothing to switch (resolved, no escalation, policy deleted or unchanged)."""
    with transaction.atomic():
        escalation = (
            # The escalation's row only: the policy may be gone (an outer join).
            Escalation.objects.select_for_update(of=("self",))
            .select_related("policy")
            .filter(alert_id=alert.pk)
            .first()
        )
        # The state is read under the lock: a resolve committed before it is seen.
        state = Alert.objects.filter(pk=alert.pk).values_list("state", flat=True).first()
        if state == Alert.State.RESOLVED:
            raise CannotReapply("The alert is resolved: its escalation is over.")
        if escalation is None:
            raise CannotReapply(
                "The alert has no escalation: no policy covers it, or paging has not "
                "taken it up yet."
            )
        if escalation.policy is None:
            raise CannotReapply("The policy this alert runs on was deleted: there is no newer one.")
        previous = escalation.policy_version
        if escalation.policy.version == previous:
            raise CannotReapply(f"The alert already runs on the current version ({previous}).")
        try:
            written = engine.reapply(escalation)
        except PolicyError as error:
            raise CannotReapply(f"The current policy cannot run: {error}") from None
        lifecycle.policy_reapplied(alert, actor, previous, escalation.policy_version)
    return Reapplied(previous, escalation.policy_version, written)
