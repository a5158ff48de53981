"""Integration and ping keys kept out of the log.

An Alertmanager integration's key is its URL's last segment (Alertmanager's
`webhook_configs` sends no header), and it is stored only as a hash; a job monitor's
ping key is a segment of every ping URL (`/ping/<key>/<slug>`), as in Healthchecks. Django's request
logger writes the path of every 4xx and 5xx answer, and a runserver or gunicorn access
line writes it too: any of those would put a working key in the log, for anyone who
reads it to post alerts as that organisation. This filter, on the one handler, masks
every key-shaped word in every line, whoever wrote it.
"""

from __future__ import annotations

import logging
import re

# controlplane.paging.models.INTEGRATION_KEY_PREFIX and controlplane.jobs.models.
# PING_KEY_PREFIX, then the key's url-safe body.
PREFIXES = ("amk_", "jpk_")
KEY = re.compile(r"(amk|jpk)_[A-Za-z0-9_-]+")
MASKED = "amk_…"


def mask(text: str) -> str:
    if not any(prefix in text for prefix in PREFIXES):
        return text
    return KEY.sub(lambda found: f"{found.group(1)}_…", text)


class MaskIntegrationKeys(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(prefix in message for prefix in PREFIXES):
            record.msg, record.args = mask(message), ()
        return True
