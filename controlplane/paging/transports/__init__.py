"""Sending one notification to one channel, and saying what came of it.

One transport per channel kind (a module each, on a shared base), one contract:

    transport.deliver(config, message) -> Delivered | Retry | GiveUp

`config` is the channel's typed configuration (channels.py), `message` what the pure
payload functions built for it (payloads.py): `slack_message`/`slack_bundle`,
`pagerduty_event` (with the channel's routing key), `webhook_body`,
`email_message`/`email_bundle`. A transport only sends; `deliver(config, message)`
here picks the transport by the configuration's kind. A wrong pairing (an EmailContent
for Slack, an event built with another routing key) is a bug and raises TypeError or
ValueError; every failure to deliver is an outcome.

Outcomes. `Delivered(status)`, `Retry(reason, after_seconds, status)`,
`GiveUp(reason, status)`: frozen, and nothing else ever comes out (no exception of
requests, urllib3 or smtplib). A reason is our sentence; it never holds a secret (the
routing key, the webhook secret and header values, a Slack URL's path) nor text the
receiver sent, but for Slack's error word (`channel_not_found`: at most 64 of a-z and
_). `status` is the HTTP status, None for email (an SMTP code is in the reason).
`after_seconds` is the receiver's Retry-After (seconds or an HTTP-date, on any retried
status), at most LONGEST_RETRY_AFTER (1 h); None when absent or unreadable, and then
the caller's backoff decides.

What is retried (HTTP kinds: the same rule for all three; only the reasons differ):

    what happened                                 Slack / PagerDuty / webhook
    2xx (Slack 200 ok, PagerDuty 202)             Delivered(status)
    408 Request Timeout, 429 Too Many Requests    Retry, after Retry-After
    5xx                                           Retry, after Retry-After if given
    400, 401, 403, 404, 410, any other 4xx        GiveUp
    redirect (never followed by the guard)        GiveUp
    any other status (1xx, 304, 6xx+)             GiveUp
    timeout, refused, reset, DNS, TLS, not HTTP   Retry
    private address not allowed (Refused)         GiveUp, naming ALLOWED_PRIVATE_NETWORKS
    URL or header that cannot go on the wire      GiveUp
    answer over ANSWER_LIMIT (TooLarge)           GiveUp
    message that JSON cannot spell (NaN)          GiveUp, nothing sent

    email (Django's backend; SMTP replies by RFC 5321's classes)
    accepted                                      Delivered(None)
    4yz reply (451 at DATA, 421, 454 ...)         Retry
    every recipient refused, any of them 4yz      Retry (greylisting)
    5yz reply (550 ...), every recipient 5yz      GiveUp
    connection refused, timed out, dropped        Retry
    server lacks the STARTTLS/AUTH settings ask   GiveUp
    a broken EMAIL_* setting                      raises (the deployment's bug)

Decisions worth knowing:

- TooLarge gives up. The request went out whole and an answer began, so the receiver
  has likely taken the message; an answer bigger than 64 KiB is no Slack, PagerDuty or
  webhook receiver's (they answer a word or a small object), so the URL points
  elsewhere, and retrying would only repeat the message on every attempt.
- A timeout is retried although the receiver may have taken the message: losing a page
  is worse than a duplicate. PagerDuty folds duplicates by dedup_key; Slack and webhook
  receivers may see one.
- Redirects give up: the guard never follows them (the next hop escapes its check and
  the signature would go along); the channel's URL needs fixing.
- A 2xx body is not read: Slack's `ok` and PagerDuty's JSON are what the real services
  send, but a Slack-compatible receiver that says 2xx has taken the message whatever
  it writes.
- Retry-After is honoured on every retried status (a 503 often carries it), read as
  delay-seconds or an HTTP-date, capped at 1 h; garbage is ignored (None).
- Each webhook attempt is signed anew (the timestamp is the attempt's), over exactly
  the bytes sent; the channel's headers never replace ours, whatever their case.
- Email: recipients refused one by one while others are accepted go unreported by
  Django's backend; the message counts as delivered.
- One module per kind on a shared base (DESIGN.md's layout): HTTP kinds differ only in
  their destination's name and what their statuses mean, so the base holds the
  sending and the classification, and a kind's module is a screen long.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from controlplane.paging.channels import ChannelConfig, ChannelKind
from controlplane.paging.payloads import EmailContent
from controlplane.paging.transports.base import (
    ANSWER_LIMIT,
    LONGEST_RETRY_AFTER,
    SEND_TIMEOUT,
    Delivered,
    GiveUp,
    HttpTransport,
    Outcome,
    Retry,
    Transport,
    retry_after,
    status_word,
)
from controlplane.paging.transports.mail import EmailTransport, smtp_outcome
from controlplane.paging.transports.pagerduty import PagerDutyTransport
from controlplane.paging.transports.slack import SlackTransport
from controlplane.paging.transports.webhook import WebhookTransport

__all__ = [
    "ANSWER_LIMIT",
    "LONGEST_RETRY_AFTER",
    "SEND_TIMEOUT",
    "Delivered",
    "EmailTransport",
    "GiveUp",
    "HttpTransport",
    "Message",
    "Outcome",
    "PagerDutyTransport",
    "Retry",
    "SlackTransport",
    "Transport",
    "WebhookTransport",
    "deliver",
    "retry_after",
    "smtp_outcome",
    "status_word",
    "transport_for",
]

Message = Mapping[str, Any] | EmailContent

TRANSPORTS: dict[ChannelKind, Callable[..., Transport]] = {
    ChannelKind.EMAIL: EmailTransport,
    ChannelKind.SLACK: SlackTransport,
    ChannelKind.PAGERDUTY: PagerDutyTransport,
    ChannelKind.WEBHOOK: WebhookTransport,
}


def transport_for(kind: ChannelKind | str, *, timeout: float | None = None) -> Transport:
    """The transport of channels of `kind`; `timeout` (seconds) overrides its default."""
    transport = TRANSPORTS[ChannelKind(kind)]
    return transport() if timeout is None else transport(timeout=timeout)


def deliver(config: ChannelConfig, message: Message, *, timeout: float | None = None) -> Outcome:
    """Send `message` to the channel `config` describes (module doc)."""
    return transport_for(config.kind, timeout=timeout).deliver(config, message)
