"""Slack incoming webhooks (and Slack-compatible receivers such as Mattermost)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controlplane.paging.channels import SlackConfig
from controlplane.paging.transports.base import JSON, HttpTransport, Outcome, encoded, status_word

# What Slack means by each status it documents (PROTOCOLS.md), beyond the word it sends.
_MEANINGS = {
    400: "the message was refused as malformed",
    403: "the webhook may not post (its token is invalid or posting is prohibited)",
    404: "the webhook no longer exists (revoked, or its channel deleted)",
    410: "the webhook's channel is archived",
    429: "rate limited (about one message a second per webhook)",
}


class SlackTransport(HttpTransport):
    destination = "the Slack webhook"
    answerer = "Slack"

    def deliver(self, config: SlackConfig, message: Mapping[str, Any]) -> Outcome:
        """POST `message` (payloads.slack_message or slack_bundle) to the webhook URL.

        Any 2xx is delivered: Slack's success is 200 `ok`, and a Slack-compatible
        receiver that says 2xx has taken the message whatever its body.
        """
        if not isinstance(config, SlackConfig) or not isinstance(message, Mapping):
            raise TypeError("a Slack delivery takes a SlackConfig and a Slack message")
        body = encoded(message)
        if not isinstance(body, bytes):
            return body
        return self.post(config.url, body, {"Content-Type": JSON})

    def explain(self, status: int, body: bytes) -> str:
        word = status_word(body)
        said = f"Slack answered HTTP {status}" + (f" {word}" if word else "")
        if status in _MEANINGS:
            return f"{said}: {_MEANINGS[status]}"
        if 500 <= status < 600:
            return f"{said}: a failure on Slack's side"
        return said
