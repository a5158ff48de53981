"""PagerDuty Events API v2."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controlplane.paging.channels import PagerDutyConfig
from controlplane.paging.transports.base import JSON, HttpTransport, Outcome, encoded

# PagerDuty's 400 body names what is wrong, quoting our fields back (the routing key
# among them): it is never read, only its status.
_MEANINGS = {
    400: "the event is invalid",
    429: "rate limited (about 120 events a minute per routing key)",
}


class PagerDutyTransport(HttpTransport):
    destination = "the PagerDuty endpoint"
    answerer = "PagerDuty"

    def deliver(self, config: PagerDutyConfig, event: Mapping[str, Any]) -> Outcome:
        """POST `event` (payloads.pagerduty_event, built with this channel's routing key)
        to the channel's endpoint. Any 2xx is delivered (PagerDuty answers 202).

        A retry is harmless here: the event carries the alert's one dedup_key.
        """
        if not isinstance(config, PagerDutyConfig) or not isinstance(event, Mapping):
            raise TypeError("a PagerDuty delivery takes a PagerDutyConfig and an event")
        if event.get("routing_key") != config.routing_key:
            # PagerDuty drops follow-ups sent with another key than the trigger's: an
            # event built for another channel is a bug, not a delivery failure.
            raise ValueError("the event was built with another routing key than the channel's")
        body = encoded(event)
        if not isinstance(body, bytes):
            return body
        return self.post(config.url, body, {"Content-Type": JSON})

    def explain(self, status: int, body: bytes) -> str:
        said = f"PagerDuty answered HTTP {status}"
        if status in _MEANINGS:
            return f"{said}: {_MEANINGS[status]}"
        if 500 <= status < 600:
            return f"{said}: a failure on PagerDuty's side"
        if status in (401, 403, 404, 405):
            return f"{said}: the endpoint URL is likely not the Events API v2"
        return said
