"""People in the trail and the logs: a pseudonym per user, never a name or an address.

The pseudonym is random, not derived from the user: once `erasure.erase()` deletes the
row that links it to the user (`Pseudonym`), nothing can lead back.

Logs and spans name the signed-in user through `of_user` (OBSERVABILITY["USER_ID"]),
which keeps the pseudonyms it has seen in this process, so a signed-in request costs
no query for it after the user's first; signing in looks it up already.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in
from django.db import IntegrityError, router, transaction
from django.dispatch import receiver

from controlplane.audit.models import Pseudonym
from controlplane.catalog.actors import Actor

ERASED = "erased"  # what a page shows for a pseudonym no longer linked to anyone

# Signed-in users' pseudonyms, this process's own: {(pk, date_joined): pseudonym}.
# The moment the account was made is part of the key so that a primary key used again
# (SQLite hands out again one that a rolled-back transaction took) never finds someone
# else's pseudonym. Safe after an erasure: an erased user is inactive with no usable
# password and no session left, so no request of theirs reaches the middleware again,
# and an entry still held by another process links only the id of an anonymised row
# to a pseudonym nothing resolves any more. The erasing process forgets its own entry.
_signed_in: dict[tuple[Any, Any], str] = {}
# Past this many people the cache starts again: a bound, not an eviction policy.
SIGNED_IN_CACHE_SIZE = 10_000


def of_user_id(user_id: int | str | None) -> str | None:
    """The user's pseudonym, made on first use; None for no user, a user gone or erased."""
    return _pseudonym(user_id)[0]


def _pseudonym(user_id: int | str | None) -> tuple[str | None, bool]:
    """The pseudonym, and whether this call made it."""
    if user_id in (None, ""):
        return None, False
    user_id = int(user_id)
    found = Pseudonym.objects.filter(user_id=user_id).values_list("value", flat=True).first()
    if found:
        return found, False
    if not _nameable(user_id):
        return None, False
    try:
        with transaction.atomic(using=router.db_for_write(Pseudonym)):
            return Pseudonym.objects.create(user_id=user_id).value, True
    except IntegrityError:
        # Made meanwhile by another request, or the user is gone.
        found = Pseudonym.objects.filter(user_id=user_id).values_list("value", flat=True).first()
        return found, False


def of_user(user: Any) -> str | None:
    """For the `observability` package's logs and spans (OBSERVABILITY["USER_ID"]).

    A person by pseudonym; anything else signed in (an API token's principal) is no
    person and keeps its own id ("token:12").
    """
    pk = getattr(user, "pk", None)
    if pk is None:
        return None
    if not isinstance(user, get_user_model()):
        return str(pk)
    key = (pk, getattr(user, "date_joined", None))
    found = _signed_in.get(key)
    if found is None:
        found, made = _pseudonym(pk)
        if found is not None:
            _remember(key, found, made)
    return found


@receiver(user_logged_in, dispatch_uid="audit-pseudonym-at-login")
def _looked_up_at_login(sender: Any, request: Any, user: Any, **_: Any) -> None:
    # Looked up as the person signs in, so that their requests served by this process
    # cost no query for it, the first one included.
    of_user(user)


def _remember(key: tuple[Any, Any], value: str, made: bool) -> None:
    # A pseudonym made inside a transaction is kept once committed: were the transaction
    # rolled back, it never existed, and the one made next would differ. (The middleware
    # asks outside any transaction; a row found was committed, but for one made earlier
    # in the same transaction, which only code other than the middleware would see.)
    using = router.db_for_write(Pseudonym)
    if made and transaction.get_connection(using).in_atomic_block:
        transaction.on_commit(lambda: _store(key, value), using=using)
    else:
        _store(key, value)


def _store(key: tuple[Any, Any], value: str) -> None:
    if len(_signed_in) >= SIGNED_IN_CACHE_SIZE:
        _signed_in.clear()
    _signed_in[key] = value


def forget(user_id: Any) -> None:
    """Drop this process's cached pseudonym of a user (an erasure does, once committed)."""
    for key in [key for key in _signed_in if key[0] == user_id]:
        _signed_in.pop(key, None)


def forget_all() -> None:
    _signed_in.clear()


def actor_spec(actor: Actor) -> str:
    """The spec the trail stores: a user by pseudonym, any other actor as it is."""
    if actor.kind == "user" and actor.user_id is not None:
        return f"user:{of_user_id(actor.user_id) or ERASED}"
    return actor.spec


def people(values: dict[str, Any], names: frozenset[str]) -> dict[str, Any]:
    """`values` with the user ids under `names` turned into pseudonyms ("erased" for
    someone no longer linked to one)."""
    if not names:
        return values
    return {
        name: ((of_user_id(value) or ERASED) if name in names and value is not None else value)
        for name, value in values.items()
    }


def names(pseudonyms: set[str]) -> dict[str, str]:
    """Usernames for pseudonyms still linked to someone, for pages that show the trail."""
    rows = Pseudonym.objects.filter(value__in=pseudonyms).select_related("user")
    return {row.value: row.user.get_username() for row in rows}


def _nameable(user_id: int) -> bool:
    """Whether a pseudonym may be made for the user: not for one gone, nor for one
    erased, whose link was destroyed on purpose (a new one would name them again)."""
    from controlplane.audit.erasure import is_erased

    user = get_user_model()._base_manager.filter(pk=user_id).first()
    return user is not None and not is_erased(user)
