"""Signed one-click links as tables: what reads back, and every way a token is refused.

The clock is an argument (no sleeping): a token issued at ISSUED is read at the
moments each row names.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.core import signing

from controlplane.paging import links
from controlplane.paging.links import LIFETIME, Action, Link, LinkRefused, Refusal

ISSUED = datetime(2026, 3, 29, 1, 30, 15, tzinfo=UTC)
ALERT, NOTIFICATION = 1234, 56789
LINK = Link(ALERT, NOTIFICATION, Action.ACKNOWLEDGE, ISSUED)


def refusal(token: str, alert_id: int = ALERT, now: datetime = ISSUED) -> Refusal | None:
    try:
        links.read(token, alert_id, now)
    except LinkRefused as refused:
        return refused.refusal
    return None


@pytest.mark.parametrize(
    "now",
    [ISSUED, ISSUED + timedelta(seconds=1), ISSUED + LIFETIME - timedelta(seconds=1)],
    ids=["at once", "a second later", "a second before it expires"],
)
@pytest.mark.parametrize("action", list(Action))
def test_a_token_reads_back_as_its_link_until_it_expires(now, action):
    link = LINK.to(action)

    assert links.read(links.issue(link), ALERT, now) == link


def test_a_token_is_a_path_segment_that_needs_no_escaping():
    token = links.issue(LINK)

    assert re.fullmatch(r"[A-Za-z0-9._-]+", token), token
    assert len(token) < 100


@pytest.mark.parametrize(
    ("age", "expected"),
    [
        (LIFETIME, None),
        (LIFETIME + timedelta(seconds=1), Refusal.EXPIRED),
        (LIFETIME + timedelta(days=30), Refusal.EXPIRED),
        # Issued "later" than now: a worker whose clock runs ahead. Ours, so honoured.
        (-timedelta(minutes=5), None),
    ],
    ids=["exactly 24 h", "24 h and a second", "a month", "clock skew"],
)
def test_expiry(age, expected):
    assert refusal(links.issue(LINK), now=ISSUED + age) == expected


def test_a_token_of_another_alert_is_refused_as_such():
    token = links.issue(LINK)

    assert refusal(token, alert_id=ALERT + 1) == Refusal.WRONG_ALERT
    # Even once expired: the path names another alert before anything else is said.
    later = ISSUED + LIFETIME * 2
    assert refusal(token, alert_id=ALERT + 1, now=later) == Refusal.WRONG_ALERT


def _value(token: str) -> str:
    return token.rsplit(".", 1)[0]


def _resigned(value: str, **signer) -> str:
    return signing.Signer(**{"salt": links.SALT, "sep": ".", **signer}).sign(value)


def _flip(text: str, index: int) -> str:
    return text[:index] + ("A" if text[index] != "A" else "B") + text[index + 1 :]


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda t: _flip(t, len(t) - 1), id="signature: last character"),
        pytest.param(lambda t: _flip(t, len(_value(t)) + 3), id="signature: a middle character"),
        pytest.param(lambda t: t[:-1], id="signature: cut short"),
        pytest.param(lambda t: t + "A", id="signature: one character more"),
        pytest.param(lambda t: _value(t) + ".", id="signature: none"),
        pytest.param(lambda t: _value(t), id="the value alone"),
        pytest.param(lambda t: t.replace(f"{ALERT}.", f"{ALERT + 1}.", 1), id="the alert id"),
        pytest.param(lambda t: t.replace(f".{NOTIFICATION}.", ".1.", 1), id="the notification"),
        pytest.param(lambda t: t.replace(".a.", ".r.", 1), id="the action: to resolve"),
        pytest.param(
            lambda t: t.replace(
                signing.b62_encode(int(ISSUED.timestamp())),
                signing.b62_encode(int((ISSUED + LIFETIME).timestamp())),
                1,
            ),
            id="the issue time: pushed a day on",
        ),
        pytest.param(lambda t: _resigned(_value(t), salt="another"), id="another salt"),
        pytest.param(lambda t: _resigned(_value(t), key="k" * 50), id="another key"),
        pytest.param(
            lambda t: _resigned(_value(t), algorithm="sha1"), id="another algorithm (sha1)"
        ),
        pytest.param(lambda t: signing.dumps({"alert": ALERT}), id="another signed value"),
        pytest.param(lambda t: "", id="empty"),
        pytest.param(lambda t: ".", id="a dot"),
        pytest.param(lambda t: t.upper(), id="upper-cased"),
        pytest.param(lambda t: t + "\u00e9", id="non-ASCII"),
        pytest.param(lambda t: "x" * 10_000, id="long"),
    ],
)
def test_a_tampered_token_is_refused(tamper):
    assert refusal(tamper(links.issue(LINK))) == Refusal.TAMPERED


@pytest.mark.parametrize(
    "value",
    [
        f"{ALERT}.{NOTIFICATION}.a",  # a part missing
        f"{ALERT}.{NOTIFICATION}.a.1tZ3k2.extra",  # a part too many
        f"{ALERT}.{NOTIFICATION}.x.1tZ3k2",  # no such action
        f"{ALERT}.n.a.1tZ3k2",  # not a number
        f"{ALERT}.0.a.1tZ3k2",  # no notification has id 0
        f"{ALERT}.{NOTIFICATION}.a.!!",  # not base 62
    ],
)
def test_a_value_signed_under_our_salt_but_not_a_link_is_refused(value):
    """Only a key shared with something else signing under our salt gets here: still a
    clean refusal, never an exception."""
    assert refusal(_resigned(value)) == Refusal.TAMPERED


def test_rotating_the_secret_key_keeps_links_until_they_expire(settings):
    token = links.issue(LINK)
    old_key = settings.SECRET_KEY

    settings.SECRET_KEY = "a-new-secret-key-for-this-test-" + "0" * 20
    assert refusal(token) == Refusal.TAMPERED

    settings.SECRET_KEY_FALLBACKS = [old_key]
    assert refusal(token) is None
    assert refusal(token, now=ISSUED + LIFETIME + timedelta(seconds=1)) == Refusal.EXPIRED


def test_the_resolve_link_of_an_acknowledge_link_expires_with_it():
    resolve = LINK.to(Action.RESOLVE)

    assert resolve.action == Action.RESOLVE
    assert resolve.expires_at == LINK.expires_at == ISSUED + LIFETIME
    assert links.issue(resolve) != links.issue(LINK)


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"issued_at": ISSUED.replace(tzinfo=None)}, "aware"),
        ({"alert_id": 0}, "ids"),
        ({"notification_id": -1}, "ids"),
        ({"action": "delete"}, "delete"),
    ],
)
def test_a_link_needs_ids_an_action_and_an_aware_time(fields, error):
    values = {
        "alert_id": ALERT,
        "notification_id": NOTIFICATION,
        "action": Action.ACKNOWLEDGE,
        "issued_at": ISSUED,
        **fields,
    }

    with pytest.raises(ValueError, match=error):
        Link(**values)


def test_a_link_keeps_its_issue_time_to_the_second():
    link = Link(ALERT, NOTIFICATION, "acknowledge", ISSUED + timedelta(microseconds=999_999))

    assert link.issued_at == ISSUED
    assert link.action is Action.ACKNOWLEDGE
