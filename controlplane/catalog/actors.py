"""Who made a change: a person, an API token, or a task of the system.

Every recorder (one function per context that writes a change and its trail)
takes an `Actor`. It is stored as its `spec` ("user:42", "token:12",
"system:beat", "link:17.ops-slack"), so a row keeps naming its actor after the user
or token is gone; `labels()` turns stored specs back into names for pages, in two
queries at most.

A `link` is whoever followed the signed one-click link of a notification
(paging/links.py): nobody signed in, known only as the notification that carried the
link and the channel it reached, both kept in the spec, so naming it costs no query
and survives the channel.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["user", "token", "system", "link"]
KINDS: tuple[Kind, ...] = ("user", "token", "system", "link")


class ActorError(ValueError):
    """A stored actor spec that names no kind of actor."""


@dataclass(frozen=True)
class Actor:
    kind: Kind
    ident: str
    # What a page shows; not part of the identity (a renamed user is the same actor).
    label: str = field(default="", compare=False)
    user_id: int | None = field(default=None, compare=False)

    @classmethod
    def user(cls, user: Any) -> Actor:
        return cls("user", str(user.pk), user.get_username(), user_id=user.pk)

    @classmethod
    def token(cls, token: Any) -> Actor:
        return cls("token", str(token.pk), _token_label(token.pk, token.name))

    @classmethod
    def system(cls, name: str) -> Actor:
        if not name or ":" in name:
            raise ActorError(f"a system actor needs a name without ':', got {name!r}")
        return cls("system", name, f"system ({name})")

    @classmethod
    def link(cls, notification_id: int, channel: str) -> Actor:
        """Whoever followed the one-click link of notification `notification_id`, sent
        to the channel named `channel` (the id, all digits, ends at the first '.')."""
        if not channel:
            raise ActorError("a link actor needs the name of the channel it reached")
        return cls("link", f"{notification_id}{_LINK_SEP}{channel}", _link_label(channel))

    @classmethod
    def parse(cls, spec: str) -> Actor:
        """The actor a stored spec names; its label is generic until `labels()` names it."""
        kind, _, ident = spec.partition(":")
        if kind not in KINDS or not ident:
            raise ActorError(
                f"{spec!r} is not an actor (user:ID, token:ID, system:NAME or link:ID.CHANNEL)"
            )
        if kind == "user":
            if not (ident.isascii() and ident.isdigit()):
                raise ActorError(f"{spec!r} does not name a user by id")
            return cls("user", ident, f"user #{ident}", user_id=int(ident))
        if kind == "token":
            return cls("token", ident, _token_label(ident, ""))
        if kind == "link":
            notification, _, channel = ident.partition(_LINK_SEP)
            if not (notification.isascii() and notification.isdigit()):
                raise ActorError(f"{spec!r} does not name a notification by id")
            return cls.link(int(notification), channel)
        return cls.system(ident)

    @property
    def spec(self) -> str:
        return f"{self.kind}:{self.ident}"

    def __str__(self) -> str:
        return self.spec


BEAT = Actor.system("beat")
# A change made outside any request or task: a management command, the Django shell.
CONSOLE = Actor.system("console")

# Who is acting in this request: set at the edge (a request's user, an API token), read
# by recorders reached indirectly, through a model's signals (a silence or rule saved in
# the admin resolves and silences alerts in that person's name, not the system's). It
# may be a function, asked only when a recorder needs it: naming the request's user
# then costs nothing on the requests that change nothing.
Acting = Actor | Callable[[], Actor | None]
_acting: ContextVar[Acting | None] = ContextVar("controlplane_acting", default=None)


@contextmanager
def acting(actor: Acting) -> Iterator[None]:
    """Name `actor` (or a function giving it) as the author of the changes made inside
    the block."""
    reset = _acting.set(actor)
    try:
        yield
    finally:
        _acting.reset(reset)


def begin_acting(actor: Acting) -> Any:
    """`acting` for edges that cannot wrap a block (DRF's initial/finalize): returns the
    value `end_acting` takes."""
    return _acting.set(actor)


def end_acting(reset: Any) -> None:
    _acting.reset(reset)


def current(default: Actor = CONSOLE) -> Actor:
    """The actor of the change under way: the request's or task's, else `default`."""
    actor = _acting.get()
    if callable(actor):
        actor = actor()
    return actor or default


_LINK_SEP = "."


def _link_label(channel: str) -> str:
    return f"{channel} (one-click link)"


def _token_label(pk: Any, name: str) -> str:
    return f"API token {name!r} (#{pk})" if name else f"API token #{pk}"


def labels(specs: Iterable[str]) -> dict[str, str]:
    """Display names for stored actor specs: users by username, tokens by name."""
    from django.contrib.auth import get_user_model

    from controlplane.catalog.models import ApiToken

    actors: dict[str, Actor | None] = {}
    for spec in set(specs):
        try:
            actors[spec] = Actor.parse(spec)
        except ActorError:
            actors[spec] = None
    user_ids = {a.user_id for a in actors.values() if a is not None and a.user_id is not None}
    token_ids = {
        int(a.ident) for a in actors.values() if a and a.kind == "token" and a.ident.isdigit()
    }
    User = get_user_model()
    usernames = (
        dict(User.objects.filter(pk__in=user_ids).values_list("pk", User.USERNAME_FIELD))
        if user_ids
        else {}
    )
    tokens = (
        dict(ApiToken.objects.filter(pk__in=token_ids).values_list("pk", "name"))
        if token_ids
        else {}
    )
    named: dict[str, str] = {}
    for spec, actor in actors.items():
        if actor is None:
            named[spec] = spec  # an older or hand-written spec: shown as it is
        elif actor.user_id is not None and actor.user_id in usernames:
            named[spec] = usernames[actor.user_id]
        elif actor.kind == "token" and actor.ident.isdigit() and int(actor.ident) in tokens:
            named[spec] = _token_label(actor.ident, tokens[int(actor.ident)])
        else:
            named[spec] = actor.label
    return named
