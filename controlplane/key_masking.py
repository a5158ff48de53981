"""Integration keys kept out of the log.

An Alertmanager integration's key is its URL's last segment (Alertmanager's
`webhook_configs` sends no header), and it is stored only as a hash. Django's request
logger writes the path of every 4xx and 5xx answer, and a runserver or gunicorn access
line writes it too: any of those would put a working key in the log, for anyone who
reads it to post alerts as that organisation. This filter, on the one handler, masks
every key-shaped word in every line, whoever wrote it.
"""

from __future__ import annotations

import logging
import re

# controlplane.paging.models.INTEGRATION_KEY_PREFIX, then the key's url-safe body.
KEY = re.compile(r"amk_[A-Za-z0-9_-]+")
MASKED = "amk_…"


def mask(text: str) -> str:
    return KEY.sub(MASKED, text) if "amk_" in text else text


class MaskIntegrationKeys(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "amk_" in message:
            record.msg, record.args = mask(message), ()
        return True
