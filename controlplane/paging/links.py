"""Signed one-click links: acknowledge an alert from the message that told you of it.

The link is the credential, as in PagerDuty's and Grafana OnCall's messages: whoever
holds it may act on one alert, in the name of the notification that carried it, until
it expires, without signing in (the people paged at night are not all at a browser
with a session). So its token is bound to

- the alert: its id is in the path too, and a token of another alert is refused there;
- the notification that carried it: the timeline names that notification's channel
  as the actor ("ops-slack (one-click link)");
- the action: acknowledge, or resolve (the page after an acknowledge offers it);
- the moment it was issued (the send): refused `LIFETIME`, 24 hours, later. A page
  asks for an answer within minutes; a day covers a reader who was asleep, and a
  link found later in a mailbox acts no more.

A token is `<alert>.<notification>.<a|r>.<issued, base 62 unix seconds>.<signature>`,
signed with `django.core.signing` (HMAC-SHA256 of SECRET_KEY) under a salt of its
own, so no other value the project signs (sessions, password-reset links) is ever a
link. Rotating SECRET_KEY with the old key in SECRET_KEY_FALLBACKS keeps the links
already sent working until they expire; without it, they all stop at once.

Following a link never acts by itself: the page it opens asks for a POST (with the
CSRF token) first, because mail scanners and chat previews fetch links.

Pure: the clock is an argument, nothing here reads the database; the key is
django.core.signing's (settings.SECRET_KEY).
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.core import signing

SALT = "controlplane.paging.links"
LIFETIME = timedelta(hours=24)
_SEP = "."


class Action(enum.StrEnum):
    ACKNOWLEDGE = "acknowledge"
    RESOLVE = "resolve"


_CODES = {Action.ACKNOWLEDGE: "a", Action.RESOLVE: "r"}
_ACTIONS = {code: action for action, code in _CODES.items()}


class Refusal(enum.StrEnum):
    """Every reason a token is refused; nothing else is ever raised."""

    TAMPERED = "tampered"  # not ours: cut, altered, signed with another key or salt
    WRONG_ALERT = "wrong alert"  # ours, but for another alert than the path names
    EXPIRED = "expired"  # ours, for this alert, issued more than LIFETIME ago


class LinkRefused(Exception):
    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.value)
        self.refusal = refusal


@dataclass(frozen=True)
class Link:
    alert_id: int
    notification_id: int
    action: Action
    issued_at: datetime  # aware; kept to the whole second

    def __post_init__(self) -> None:
        if self.issued_at.utcoffset() is None:
            raise ValueError("issued_at must be an aware datetime")
        if self.alert_id < 1 or self.notification_id < 1:
            raise ValueError("a link names an alert and a notification by their ids")
        object.__setattr__(self, "action", Action(self.action))
        whole = datetime.fromtimestamp(int(self.issued_at.timestamp()), UTC)
        object.__setattr__(self, "issued_at", whole)

    @property
    def expires_at(self) -> datetime:
        return self.issued_at + LIFETIME

    def to(self, action: Action) -> Link:
        """The same link for another action, expiring when this one does (the page
        after an acknowledge offers to resolve with it)."""
        return dataclasses.replace(self, action=action)


def _signer() -> signing.Signer:
    return signing.Signer(salt=SALT, sep=_SEP, algorithm="sha256")


def issue(link: Link) -> str:
    """The token of `link`, for a URL path: letters, digits, '.', '-' and '_' only."""
    issued = signing.b62_encode(int(link.issued_at.timestamp()))
    value = _SEP.join([str(link.alert_id), str(link.notification_id), _CODES[link.action], issued])
    return _signer().sign(value)


def read(token: str, alert_id: int, now: datetime) -> Link:
    """The link `token` stands for, if it is ours, for `alert_id`, and not expired at
    `now`; else LinkRefused saying which of those it is not."""
    try:
        value = _signer().unsign(token)
    except signing.BadSignature:
        raise LinkRefused(Refusal.TAMPERED) from None
    try:
        # Only what we signed gets here, so these parse: a failure is a key shared
        # with something else that signs under our salt, and is refused as such.
        alert, notification, code, issued = value.split(_SEP)
        link = Link(
            int(alert),
            int(notification),
            _ACTIONS[code],
            datetime.fromtimestamp(signing.b62_decode(issued), UTC),
        )
    except (ValueError, KeyError, OverflowError):
        raise LinkRefused(Refusal.TAMPERED) from None
    if link.alert_id != alert_id:
        raise LinkRefused(Refusal.WRONG_ALERT)
    if now > link.expires_at:
        raise LinkRefused(Refusal.EXPIRED)
    return link
