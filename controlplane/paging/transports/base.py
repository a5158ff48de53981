"""What every transport shares: the outcomes, Retry-After, and sending over HTTP.

A transport sends one message that the pure payload functions built
(controlplane/paging/payloads.py) and says what came of it, as one of three frozen
outcomes. Nothing else leaves a transport: no exception of requests, urllib3 or
smtplib, no text the receiver sent beyond a short status word such as Slack's
`channel_not_found`, and never a secret (routing key, webhook secret or header values,
a Slack URL's path).
"""

from __future__ import annotations

import email.utils
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import Any, ClassVar, Protocol

from controlplane.catalog.outbound import (
    WEBHOOKS,
    Answer,
    Outbound,
    OutboundError,
    Redirected,
    Refused,
    Timeout,
    TooLarge,
    Unreachable,
    Unsendable,
)
from controlplane.paging.payloads import encode_body

# Slack, PagerDuty and webhook receivers answer in well under a second when healthy; a
# worker waiting longer only delays the notifications queued behind this one, which a
# retry serves better. The guard allows the whole exchange twice this (outbound.py).
SEND_TIMEOUT = 10.0
# Their answers are a word ("ok"), a small JSON object or an empty body: 64 KiB is far
# more than any of them sends, so a bigger answer is not from a receiver of the kind.
ANSWER_LIMIT = 64 * 1024
# The longest wait a Retry-After may ask for: past it the ledger's own backoff (about an
# hour of attempts in all) is the better judge.
LONGEST_RETRY_AFTER = 3600.0
# Statuses after which the same request may well succeed later (RFC 9110: 408 Request
# Timeout, 429 Too Many Requests); every other 4xx says the request itself is wrong.
RETRIED_CLIENT_ERRORS = frozenset({408, 429})


# The outcomes: a closed set.


@dataclass(frozen=True)
class Delivered:
    """The receiver took the message. `status` is the HTTP status (None for email,
    which has none; an SMTP server that accepts says 250, always)."""

    status: int | None = None


@dataclass(frozen=True)
class Retry:
    """Not delivered, and worth trying again: after `after_seconds` when the receiver
    said when (Retry-After, bounded by LONGEST_RETRY_AFTER), else after the caller's
    own backoff. `status` is the HTTP status when an answer came."""

    reason: str
    after_seconds: float | None = None
    status: int | None = None

    def __post_init__(self) -> None:
        if self.after_seconds is not None and not 0 <= self.after_seconds <= LONGEST_RETRY_AFTER:
            raise ValueError(f"after_seconds must be within 0 and {LONGEST_RETRY_AFTER:g}")


@dataclass(frozen=True)
class GiveUp:
    """Not delivered, and trying again would get the same answer (or could send a
    duplicate for nothing): the notification is dead until someone changes something."""

    reason: str
    status: int | None = None


Outcome = Delivered | Retry | GiveUp


class Transport(Protocol):
    """One per channel kind: send one message built by the payload functions."""

    def deliver(self, config: Any, message: Any) -> Outcome: ...


# Reading what receivers say.

_DELAY_SECONDS = re.compile(r"[0-9]+")
_STATUS_WORD = re.compile(r"[a-z_]{1,64}")


def retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """The seconds a Retry-After header asks us to wait, within 0 and LONGEST_RETRY_AFTER;
    None when there is none or it is neither delay-seconds nor an HTTP-date (RFC 9110,
    10.2.3). A date in the past means now (0); `now` is unix seconds (the clock's)."""
    if value is None:
        return None
    text = value.strip()
    if _DELAY_SECONDS.fullmatch(text):
        # Past 10 digits it is past any bound anyway; int() of a huge string is not free.
        seconds = float(text) if len(text) <= 10 else LONGEST_RETRY_AFTER
    elif 0 < len(text) <= 64:  # an HTTP-date is 29 characters; anything far longer is not
        try:
            at = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if at.tzinfo is None:  # "-0000" reads as naive: HTTP dates are GMT
            at = at.replace(tzinfo=UTC)
        seconds = at.timestamp() - (time.time() if now is None else now)
    else:
        return None
    return min(max(seconds, 0.0), LONGEST_RETRY_AFTER)


def status_word(body: bytes) -> str:
    """The receiver's one-word error (Slack's `channel_not_found`), or "" when the body is
    anything else: only a lowercase word of at most 64 letters and underscores is quoted,
    so a body echoing a URL, a key or a page of HTML never reaches a reason."""
    text = body.strip()
    if not text or len(text) > 64 or not text.isascii():
        return ""
    word = text.decode("ascii")
    return word if _STATUS_WORD.fullmatch(word) else ""


def encoded(message: Mapping[str, Any]) -> bytes | GiveUp:
    """The message as the bytes to send; GiveUp when it cannot be JSON (NaN, an object
    JSON has no spelling for): the same message would fail the same way every time."""
    try:
        return encode_body(message)
    except (TypeError, ValueError) as error:
        return GiveUp(f"the message cannot be encoded as JSON ({type(error).__name__})")


# One guarded client per process: its connection pool must not be shared with a child
# forked after it was used (a Celery prefork worker), so it is made again after a fork.
_shared: tuple[int, Outbound] | None = None


def shared_outbound() -> Outbound:
    global _shared
    if _shared is None or _shared[0] != os.getpid():
        _shared = (os.getpid(), Outbound(WEBHOOKS, max_bytes=ANSWER_LIMIT))
    return _shared[1]


# Sending over HTTP.


class HttpTransport:
    """POST bytes through the outbound guard (WEBHOOKS policy) and judge the answer.

    Subclasses name the destination and say what each status means from that kind of
    receiver (`explain`); which statuses are retried is the same for all (module doc of
    controlplane.paging.transports).
    """

    # Who answered, as the reasons say it: "the Slack webhook is unreachable: ...".
    destination: ClassVar[str] = "the receiver"
    # Who answered a status, as the reasons say it: "Slack answered HTTP 404 ...".
    answerer: ClassVar[str] = "the receiver"

    def __init__(self, *, timeout: float = SEND_TIMEOUT, outbound: Outbound | None = None) -> None:
        self.timeout = timeout
        self._outbound = outbound

    @property
    def outbound(self) -> Outbound:
        return self._outbound if self._outbound is not None else shared_outbound()

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Outcome:
        try:
            answer = self.outbound.request(
                "POST", url, timeout=self.timeout, headers=headers, content=body
            )
        except Refused as error:
            # Names the host and the setting that would allow it; the host is no secret.
            return GiveUp(error.message)
        except Redirected as error:
            return GiveUp(f"{self.destination} {error.message}", status=error.status)
        except TooLarge as error:
            return GiveUp(
                f"{self.destination} {error.message}, more than any answer of its kind: the "
                "URL is likely not such a receiver (not retried: it may have taken the message)"
            )
        except Unsendable as error:
            return GiveUp(f"{self.destination} {error.message}")
        except (Timeout, Unreachable) as error:
            return Retry(f"{self.destination} {error.message}")
        except OutboundError as error:  # a failure kind added to the guard later
            return Retry(f"{self.destination} {error.message}")
        return self.judge(answer)

    def judge(self, answer: Answer) -> Outcome:
        status = answer.status
        if 200 <= status < 300:
            return Delivered(status)
        reason = self.explain(status, answer.body)
        if status in RETRIED_CLIENT_ERRORS or 500 <= status < 600:
            # Honoured on any retried status: a 503 often says how long, like a 429.
            after = retry_after(answer.headers.get("Retry-After"))
            return Retry(reason, after_seconds=after, status=status)
        return GiveUp(reason, status=status)

    def explain(self, status: int, body: bytes) -> str:
        """What `status` from this kind of receiver means, in our words."""
        return f"{self.answerer} answered HTTP {status}{_meaning(status)}"


def _meaning(status: int) -> str:
    if status == 408:
        return ": it timed out reading the request"
    if status == 429:
        return ": it is rate limiting us"
    if 500 <= status < 600:
        return ": a failure on its side"
    if 400 <= status < 500:
        return ": it refused the request"
    return ", which is no answer to a notification"


JSON = "application/json"
