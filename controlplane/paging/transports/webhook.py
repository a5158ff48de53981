"""Webhooks: Alertmanager's webhook payload (version 4), signed when the channel has a
secret."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from controlplane.catalog.outbound import Outbound
from controlplane.paging.channels import WebhookConfig
from controlplane.paging.payloads import webhook_headers
from controlplane.paging.transports.base import SEND_TIMEOUT, HttpTransport, Outcome, encoded


class WebhookTransport(HttpTransport):
    destination = "the webhook"
    answerer = "the webhook"

    def __init__(
        self,
        *,
        timeout: float = SEND_TIMEOUT,
        outbound: Outbound | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(timeout=timeout, outbound=outbound)
        self.clock = clock

    def deliver(self, config: WebhookConfig, body: Mapping[str, Any]) -> Outcome:
        """POST `body` (payloads.webhook_body) to the channel's URL.

        The bytes sent are exactly the bytes signed (payloads.encode_body), signed at
        the time of this attempt, so a retry an hour later still passes a receiver's
        freshness check. The channel's own headers go along; ours (Content-Type,
        X-Trace-Id, the signature) win over any of the same name, whatever its case.
        """
        if not isinstance(config, WebhookConfig) or not isinstance(body, Mapping):
            raise TypeError("a webhook delivery takes a WebhookConfig and a webhook body")
        content = encoded(body)
        if not isinstance(content, bytes):
            return content
        ours = webhook_headers(
            content,
            trace_id=str(body.get("trace_id") or ""),
            secret=config.secret,
            timestamp=int(self.clock()),
        )
        taken = {name.lower() for name in ours}
        headers = {name: value for name, value in config.headers if name.lower() not in taken}
        headers.update(ours)
        return self.post(config.url, content, headers)
