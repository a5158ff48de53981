"""What each kind of notification channel needs to deliver, validated.

A channel's configuration is one typed, frozen dataclass per kind, built from the
shape the API and the admin speak (issue 10):

    email      {"to": ["oncall@example.com", ...]}
    slack      {"url": "https://hooks.slack.com/services/..."}
    pagerduty  {"routing_key": "<32 letters and digits>", "url": "<endpoint>" (optional)}
    webhook    {"url": "https://...", "secret": "..." (optional),
                "headers": {"X-Name": "value", ...} (optional)}

Secrets are write-only: the PagerDuty routing key, the webhook secret, every webhook
header value (headers are where receivers' credentials go), and the Slack URL, whose
path is Slack's credential. `masked` is what the API and the admin show:

    slack      {"url": "https://hooks.slack.com/****Xk9Q"}      the last 4 of the path
    pagerduty  {"routing_key": "****abcd", "url": "https://events.pagerduty.com/..."}
    webhook    {"url": "...", "secret_set": true, "headers": {"X-Api-Key": "****"}}

`merge_update` applies a PATCH: a secret left out keeps the stored one, and so does a
secret sent back exactly as `masked` showed it (a client that GETs, edits one field and
sends the whole object back changes nothing else); `secret_set` is read-only and
ignored. A kept secret goes only to the origin (scheme, host, port) it was saved for:
a PATCH that moves the URL elsewhere must give the secret again, as a metric source's
auth header must (catalog.models.MetricSource). Changing a channel's kind is not an
update: parse the new configuration whole with `parse_config`.

No error message and no repr shows a secret.

Addresses are judged here by their shape only. Whether a host may be reached
(private, loopback, cloud metadata) is the outbound guard's decision when connecting,
on what DNS answers then (controlplane/catalog/outbound.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import models

from controlplane.catalog.validators import validate_header_value, validate_http_url


class ChannelKind(models.TextChoices):
    EMAIL = "email", "Email"
    SLACK = "slack", "Slack"
    PAGERDUTY = "pagerduty", "PagerDuty"
    WEBHOOK = "webhook", "Webhook"


# Where errors about the configuration as a whole go: DRF's key, which the API's error
# handler (controlplane/api/errors.py) prints as "config: ..." when nested under config.
NON_FIELD_ERRORS = "non_field_errors"

MASK = "****"
SLACK_HOST = "hooks.slack.com"
PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"

# Bounds that keep a channel row, and every request made from it, a sensible size.
LONGEST_URL = 2000
MOST_RECIPIENTS = 20
MOST_HEADERS = 16
LONGEST_HEADER_NAME = 64
LONGEST_HEADER_VALUE = 1024
# A signing secret a receiver could guess is no signature: 16 characters is the least
# a random token (e.g. `openssl rand -hex 16` gives 32) would ever be.
SHORTEST_SECRET = 16
LONGEST_SECRET = 1024

ROUTING_KEY = re.compile(r"[A-Za-z0-9]{32}")
# RFC 9110's token: what a header name may be made of.
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")

# Headers a webhook's configuration may not set, and why. Authorization is allowed:
# it is how most receivers take a credential, we never set it ourselves, and its value
# is masked like every header value.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# Framing and routing of the request: a wrong Content-Length or Transfer-Encoding
# desynchronises the connection (request smuggling through a proxy on the way), and a
# Host other than the URL's reaches a virtual host the guard never judged.
_SET_BY_THE_REQUEST = frozenset(
    {"host", "content-length", "content-type", "content-encoding", "expect"}
)
# Proxies trust these to name the client; a receiver behind one would believe them.
_CLIENT_CLAIMS = frozenset({"forwarded", "x-real-ip"})
_CLIENT_CLAIM_PREFIX = "x-forwarded-"
# Ours: a receiver must be able to trust the signature and the trace it names.
_OURS = frozenset(
    {"x-signature", "x-signature-timestamp", "x-trace-id", "traceparent", "tracestate"}
)


class ChannelConfigError(ValueError):
    """The configuration is refused; `errors` maps each field to what is wrong with it.

    A DRF serializer raises `ValidationError({"config": error.errors})`; a Django form
    adds `error.messages()` to its config field. Neither ever holds a secret.
    """

    def __init__(self, errors: Mapping[str, list[str]]) -> None:
        self.errors = {name: list(messages) for name, messages in errors.items()}
        super().__init__(" ".join(self.messages()))

    def messages(self, prefix: str = "config") -> list[str]:
        """Every message as one sentence naming its field, e.g. "config.to: ..."."""
        found = []
        for name, messages in self.errors.items():
            where = prefix if name == NON_FIELD_ERRORS else f"{prefix}.{name}"
            found += [f"{where}: {message}" for message in messages]
        return found


# The configurations.


@dataclass(frozen=True)
class EmailConfig:
    kind: ClassVar[ChannelKind] = ChannelKind.EMAIL
    to: tuple[str, ...]


@dataclass(frozen=True, repr=False)
class SlackConfig:
    kind: ClassVar[ChannelKind] = ChannelKind.SLACK
    url: str

    def __repr__(self) -> str:
        return f"SlackConfig(url={_masked_slack_url(self.url)!r})"


@dataclass(frozen=True, repr=False)
class PagerDutyConfig:
    kind: ClassVar[ChannelKind] = ChannelKind.PAGERDUTY
    routing_key: str
    url: str = PAGERDUTY_EVENTS_URL

    def __repr__(self) -> str:
        return f"PagerDutyConfig(routing_key={_tail(self.routing_key)!r}, url={self.url!r})"


@dataclass(frozen=True, repr=False)
class WebhookConfig:
    kind: ClassVar[ChannelKind] = ChannelKind.WEBHOOK
    url: str
    secret: str = ""
    headers: tuple[tuple[str, str], ...] = ()

    def __repr__(self) -> str:
        names = tuple(name for name, _ in self.headers)
        secret = "<set>" if self.secret else "<none>"
        return f"WebhookConfig(url={self.url!r}, secret={secret}, headers={names!r})"


ChannelConfig = EmailConfig | SlackConfig | PagerDutyConfig | WebhookConfig

FIELDS: dict[ChannelKind, tuple[str, ...]] = {
    ChannelKind.EMAIL: ("to",),
    ChannelKind.SLACK: ("url",),
    ChannelKind.PAGERDUTY: ("routing_key", "url"),
    ChannelKind.WEBHOOK: ("url", "secret", "headers"),
}
SECRET_FIELDS: dict[ChannelKind, tuple[str, ...]] = {
    ChannelKind.EMAIL: (),
    ChannelKind.SLACK: ("url",),
    ChannelKind.PAGERDUTY: ("routing_key",),
    ChannelKind.WEBHOOK: ("secret", "headers"),
}
# Shown by `masked`, ignored by `merge_update`, refused by `parse_config`.
READ_ONLY_FIELDS: dict[ChannelKind, tuple[str, ...]] = {ChannelKind.WEBHOOK: ("secret_set",)}
_EXAMPLES = {
    ChannelKind.EMAIL: '{"to": ["oncall@example.com"]}',
    ChannelKind.SLACK: '{"url": "https://hooks.slack.com/services/..."}',
    ChannelKind.PAGERDUTY: '{"routing_key": "..."}',
    ChannelKind.WEBHOOK: '{"url": "https://example.com/hook"}',
}


# Reading the API and admin shape.


class _Problems:
    def __init__(self) -> None:
        self.errors: dict[str, list[str]] = {}

    def add(self, name: str, message: str) -> None:
        self.errors.setdefault(name, []).append(message)

    def raise_any(self) -> None:
        if self.errors:
            raise ChannelConfigError(self.errors)


def parse_config(
    kind: ChannelKind | str, raw: object, *, slack_hosts: Iterable[str] = ()
) -> ChannelConfig:
    """The configuration `raw` describes for a channel of `kind`, or ChannelConfigError.

    `slack_hosts` are the hosts besides hooks.slack.com a Slack URL may name (the
    SLACK_WEBHOOK_HOSTS setting, for Slack-compatible receivers such as Mattermost):
    "chat.example.com" allows any port, "chat.example.com:8065" that port only.
    """
    kind = _kind(kind)
    if not isinstance(raw, Mapping):
        raise ChannelConfigError(
            {
                NON_FIELD_ERRORS: [
                    f"A channel of kind {kind.value} takes an object such as "
                    f"{_EXAMPLES[kind]}, not {_json_type(raw)}."
                ]
            }
        )
    problems = _Problems()
    for name in raw:
        if not isinstance(name, str) or name not in FIELDS[kind]:
            problems.add(
                str(name)[:50],
                f"Unknown field: channels of kind {kind.value} take {_listed(FIELDS[kind])}.",
            )
    if kind is ChannelKind.EMAIL:
        config: ChannelConfig | None = _email(raw, problems)
    elif kind is ChannelKind.SLACK:
        config = _slack(raw, problems, _host_list(slack_hosts))
    elif kind is ChannelKind.PAGERDUTY:
        config = _pagerduty(raw, problems)
    else:
        config = _webhook(raw, problems)
    problems.raise_any()
    assert config is not None  # every reader that returns None has added a problem
    return config


def _kind(kind: ChannelKind | str) -> ChannelKind:
    try:
        return ChannelKind(kind)
    except ValueError:
        raise ChannelConfigError(
            {
                NON_FIELD_ERRORS: [
                    f"Unknown channel kind {str(kind)[:50]!r}: use one of {_listed(ChannelKind)}."
                ]
            }
        ) from None


def _email(raw: Mapping, problems: _Problems) -> EmailConfig | None:
    if "to" not in raw:
        problems.add("to", 'Give the addresses to send to, as a list: ["oncall@example.com"].')
        return None
    to = raw["to"]
    if not isinstance(to, list | tuple):
        problems.add(
            "to",
            f'Must be a list of addresses such as ["oncall@example.com"], not {_json_type(to)}.',
        )
        return None
    if not to:
        problems.add("to", "Give at least one address.")
        return None
    if len(to) > MOST_RECIPIENTS:
        problems.add("to", f"At most {MOST_RECIPIENTS} addresses; this list has {len(to)}.")
        return None
    seen: set[str] = set()
    for number, address in enumerate(to, start=1):
        if not isinstance(address, str):
            problems.add("to", f"Address {number} must be a string, not {_json_type(address)}.")
            continue
        try:
            validate_email(address)
        except ValidationError:
            problems.add("to", f"{_quoted(address)} is not a valid email address.")
            continue
        if address.lower() in seen:
            problems.add("to", f"{_quoted(address)} is listed twice.")
        seen.add(address.lower())
    return EmailConfig(to=tuple(to))


def _slack(raw: Mapping, problems: _Problems, allowed: frozenset[str]) -> SlackConfig | None:
    if "url" not in raw:
        problems.add(
            "url", "Give the incoming-webhook URL Slack showed when the webhook was added."
        )
        return None
    url = _url(raw["url"], "url", problems, "the incoming-webhook URL")
    if url is None:
        return None
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if host == SLACK_HOST:
        if parts.scheme != "https" or parts.port not in (None, 443):
            problems.add("url", f"A Slack webhook URL starts with https://{SLACK_HOST}/.")
            return None
    elif host not in allowed and f"{host}:{parts.port}" not in allowed:
        # The host is no secret; the path is, and is never repeated.
        problems.add(
            "url",
            f"A Slack webhook URL starts with https://{SLACK_HOST}/; {host} is not one of "
            "the hosts listed in SLACK_WEBHOOK_HOSTS.",
        )
        return None
    if parts.path.strip("/") == "":
        problems.add(
            "url", "The URL has no path: a webhook URL ends in the secret part Slack gave."
        )
        return None
    return SlackConfig(url=url)


def _pagerduty(raw: Mapping, problems: _Problems) -> PagerDutyConfig | None:
    key = raw.get("routing_key")
    if "routing_key" not in raw:
        problems.add(
            "routing_key",
            "Give the routing key: the Integration Key of an Events API v2 integration.",
        )
    elif not isinstance(key, str):
        problems.add("routing_key", f"Must be a string, not {_json_type(key)}.")
    elif key.startswith(MASK):
        problems.add(
            "routing_key", "This is the mask shown for a stored key: enter the whole routing key."
        )
    elif len(key) != 32:
        problems.add(
            "routing_key",
            f"A routing key is exactly 32 letters and digits; this one has {len(key)} characters.",
        )
    elif not ROUTING_KEY.fullmatch(key):
        problems.add(
            "routing_key",
            "A routing key is exactly 32 letters and digits; this one has other characters.",
        )
    url: str | None = PAGERDUTY_EVENTS_URL
    if raw.get("url", "") != "":
        url = _url(raw["url"], "url", problems, 'the Events API endpoint, or "" for PagerDuty\'s')
    if "routing_key" in problems.errors or url is None:
        return None
    return PagerDutyConfig(routing_key=key, url=url)


def _webhook(raw: Mapping, problems: _Problems) -> WebhookConfig | None:
    if "url" not in raw:
        problems.add("url", "Give the URL to POST alerts to.")
        url = None
    else:
        url = _url(raw["url"], "url", problems, "the URL to POST alerts to")
    secret = _secret(raw.get("secret", ""), problems)
    headers = _headers(raw.get("headers", {}), problems)
    if url is None or secret is None or headers is None:
        return None
    return WebhookConfig(url=url, secret=secret, headers=headers)


def _url(value: object, name: str, problems: _Problems, what: str) -> str | None:
    if not isinstance(value, str):
        problems.add(name, f"Must be a string: {what}, not {_json_type(value)}.")
        return None
    if len(value) > LONGEST_URL:
        problems.add(name, f"A URL can be at most {LONGEST_URL} characters long.")
        return None
    try:
        validate_http_url(value)
    except ValidationError as error:
        # Its messages describe the URL and never quote it: a Slack URL is a secret.
        for message in error.messages:
            problems.add(name, message)
        return None
    return value


def _secret(value: object, problems: _Problems) -> str | None:
    if not isinstance(value, str):
        problems.add("secret", f'Must be a string ("" for no signature), not {_json_type(value)}.')
        return None
    if value == "":
        return value
    if len(value) < SHORTEST_SECRET:
        problems.add("secret", f"A signing secret needs at least {SHORTEST_SECRET} characters.")
        return None
    if len(value) > LONGEST_SECRET:
        problems.add("secret", f"A signing secret can be at most {LONGEST_SECRET} characters long.")
        return None
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        problems.add("secret", "A signing secret cannot contain control characters or line breaks.")
        return None
    return value


def _headers(value: object, problems: _Problems) -> tuple[tuple[str, str], ...] | None:
    if not isinstance(value, Mapping):
        problems.add(
            "headers",
            'Must be an object of header names and values such as {"X-Team": "ops"}, '
            f"not {_json_type(value)}.",
        )
        return None
    if len(value) > MOST_HEADERS:
        problems.add("headers", f"At most {MOST_HEADERS} headers; this has {len(value)}.")
        return None
    before = len(problems.errors.get("headers", []))
    seen: set[str] = set()
    for name, header_value in value.items():
        why = _header_name_problem(name)
        if why is not None:
            problems.add("headers", why)
            continue
        if name.lower() in seen:
            problems.add("headers", f"{name} is given twice (header names ignore case).")
            continue
        seen.add(name.lower())
        # Values are secrets: their messages name the header, never the value.
        why = _header_value_problem(header_value)
        if why is not None:
            problems.add("headers", f"{name}: {why}")
    if len(problems.errors.get("headers", [])) > before:
        return None
    return tuple((name, header_value) for name, header_value in value.items())


def _header_name_problem(name: object) -> str | None:
    if not isinstance(name, str) or not HEADER_NAME.fullmatch(name):
        return (
            f"{_quoted(str(name))} is not a header name: use letters, digits and !#$%&'*+-.^_`|~."
        )
    if len(name) > LONGEST_HEADER_NAME:
        return f"A header name can be at most {LONGEST_HEADER_NAME} characters long."
    lowered = name.lower()
    if lowered in _HOP_BY_HOP or lowered.startswith("proxy-"):
        return f"{name} is a hop-by-hop header, about one connection: it cannot be set."
    if lowered in _SET_BY_THE_REQUEST:
        return f"{name} is set from the URL and the body when sending: it cannot be set."
    if lowered in _CLIENT_CLAIMS or lowered.startswith(_CLIENT_CLAIM_PREFIX):
        return f"{name} tells proxies who the client is: it cannot be set."
    if lowered in _OURS:
        return f"{name} is set by the control plane on every delivery: it cannot be set."
    return None


def _header_value_problem(value: object) -> str | None:
    if not isinstance(value, str):
        return f"the value must be a string, not {_json_type(value)}."
    if "\r" in value or "\n" in value:
        return "a header value cannot contain line breaks."
    try:
        validate_header_value(value)
    except ValidationError:
        return "a header value can only hold visible ASCII characters and spaces."
    if len(value) > LONGEST_HEADER_VALUE:
        return f"a header value can be at most {LONGEST_HEADER_VALUE} characters long."
    if value == MASK:
        return f"{MASK} is the mask shown for a stored value: enter the value itself."
    return None


def _host_list(hosts: Iterable[str]) -> frozenset[str]:
    return frozenset(host.strip().lower() for host in hosts if host.strip())


# Showing, updating, storing.


def masked(config: ChannelConfig) -> dict[str, object]:
    """The configuration as the API and the admin show it: secrets masked (module doc)."""
    if isinstance(config, EmailConfig):
        return {"to": list(config.to)}
    if isinstance(config, SlackConfig):
        return {"url": _masked_slack_url(config.url)}
    if isinstance(config, PagerDutyConfig):
        return {"routing_key": _tail(config.routing_key), "url": config.url}
    return {
        "url": config.url,
        "secret_set": bool(config.secret),
        "headers": {name: MASK for name, _ in config.headers},
    }


def merge_update(
    old: ChannelConfig, raw: object, *, slack_hosts: Iterable[str] = ()
) -> ChannelConfig:
    """`old` with the fields `raw` gives replaced, as a PATCH does (module doc)."""
    kind = old.kind
    if not isinstance(raw, Mapping):
        raise ChannelConfigError(
            {
                NON_FIELD_ERRORS: [
                    f"An update of a channel of kind {kind.value} takes an object such as "
                    f"{_EXAMPLES[kind]}, not {_json_type(raw)}."
                ]
            }
        )
    stored = to_json(old)
    shown = masked(old)
    merged = dict(stored)
    given: set[str] = set()  # secrets this update states itself, as opposed to keeps
    for name, value in raw.items():
        if name in READ_ONLY_FIELDS.get(kind, ()):
            continue
        if name in SECRET_FIELDS[kind] and name in shown and value == shown[name]:
            continue
        if name == "headers" and isinstance(old, WebhookConfig) and isinstance(value, Mapping):
            merged["headers"], all_given = _merge_headers(old, value)
            if all_given:
                given.add("headers")
            continue
        merged[name] = value
        given.add(name)
    config = parse_config(kind, merged, slack_hosts=slack_hosts)
    if (
        isinstance(config, PagerDutyConfig | WebhookConfig)
        and isinstance(old, PagerDutyConfig | WebhookConfig)
        and _origin(config.url) != _origin(old.url)
    ):
        _refuse_secrets_following(config, given)
    return config


def _merge_headers(old: WebhookConfig, raw: Mapping) -> tuple[dict[object, object], bool]:
    """New headers, where a value sent back as the mask keeps the stored value of that
    header; and whether every value was given anew."""
    stored = {name.lower(): value for name, value in old.headers}
    merged: dict[object, object] = {}
    all_given = True
    for name, value in raw.items():
        if value == MASK and isinstance(name, str) and name.lower() in stored:
            merged[name] = stored[name.lower()]
            all_given = False
        else:
            merged[name] = value
    return merged, all_given


def _refuse_secrets_following(new: PagerDutyConfig | WebhookConfig, given: set[str]) -> None:
    problems = _Problems()
    if isinstance(new, PagerDutyConfig) and "routing_key" not in given:
        problems.add(
            "routing_key",
            "The routing key goes only to the endpoint it was saved for: enter it again to "
            "send it to the new address.",
        )
    if isinstance(new, WebhookConfig):
        if new.secret and "secret" not in given:
            problems.add(
                "secret",
                "The secret goes only to the host it was saved for: enter it again (or clear "
                "it) to sign for the new address.",
            )
        if new.headers and "headers" not in given:
            problems.add(
                "headers",
                "Header values go only to the host they were saved for: enter them again (or "
                "clear them) to send them to the new address.",
            )
    problems.raise_any()


def to_json(config: ChannelConfig) -> dict[str, object]:
    """The configuration whole, secrets included, for a JSONField. Never show it."""
    if isinstance(config, EmailConfig):
        return {"to": list(config.to)}
    if isinstance(config, SlackConfig):
        return {"url": config.url}
    if isinstance(config, PagerDutyConfig):
        return {"routing_key": config.routing_key, "url": config.url}
    return {"url": config.url, "secret": config.secret, "headers": dict(config.headers)}


def from_json(kind: ChannelKind | str, data: object) -> ChannelConfig:
    """The inverse of `to_json`.

    What was stored passed `parse_config` when it was saved; only its shape is checked
    here, so a policy tightened later (SLACK_WEBHOOK_HOSTS, the shortest secret) does
    not make stored channels unreadable: the delivery decides what to do with them.
    """
    kind = _kind(kind)
    config = _stored(kind, data) if isinstance(data, Mapping) else None
    if config is None:
        raise ChannelConfigError(
            {
                NON_FIELD_ERRORS: [
                    f"The stored configuration is not that of a channel of kind {kind.value}: "
                    "save the channel again."
                ]
            }
        )
    return config


def _stored(kind: ChannelKind, data: Mapping) -> ChannelConfig | None:
    if kind is ChannelKind.EMAIL:
        to = data.get("to")
        if isinstance(to, list) and to and all(isinstance(address, str) for address in to):
            return EmailConfig(to=tuple(to))
        return None
    url = data.get("url")
    if kind is ChannelKind.SLACK:
        return SlackConfig(url=url) if isinstance(url, str) else None
    if kind is ChannelKind.PAGERDUTY:
        key = data.get("routing_key")
        url = url or PAGERDUTY_EVENTS_URL
        if isinstance(key, str) and isinstance(url, str):
            return PagerDutyConfig(routing_key=key, url=url)
        return None
    secret = data.get("secret") or ""
    headers = data.get("headers") or {}
    if (
        isinstance(url, str)
        and isinstance(secret, str)
        and isinstance(headers, Mapping)
        and all(isinstance(n, str) and isinstance(v, str) for n, v in headers.items())
    ):
        return WebhookConfig(url=url, secret=secret, headers=tuple(headers.items()))
    return None


# Helpers.


def _tail(secret: str) -> str:
    """The mask and the last 4 characters, enough to tell two keys apart; a short value
    shows none of itself (4 of 8 characters would halve what is left to guess)."""
    return f"{MASK}{secret[-4:]}" if len(secret) >= 16 else MASK


def _masked_slack_url(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    path = parts.path.lstrip("/") + (f"?{parts.query}" if parts.query else "")
    return f"{parts.scheme}://{parts.netloc}/{_tail(path)}"


def _origin(url: str) -> tuple[str, str, int | None]:
    """Where a URL sends its requests: scheme, host and port (the default one spelt out)."""
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default


def _json_type(value: object) -> str:
    """The JSON name of a value's type, as a client that sent it would call it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def _quoted(text: str, longest: int = 100) -> str:
    return repr(text if len(text) <= longest else text[: longest - 1] + "…")


def _listed(names: Iterable[str]) -> str:
    return ", ".join(str(name) for name in names)
