"""Beat's ticks, kept out of the INFO log.

Beat sends `alerting.evaluate_due_rules` twice a second, and the outbox dispatcher and
paging's escalation and delivery ticks every second; Celery logs each one sent,
received and finished. At INFO that is several lines a second saying nothing, burying
the evaluations and failures an operator reads the log for. Those lines are dropped
below WARNING; a tick that fails still logs its error, and LOG_LEVEL=DEBUG shows them
all. Paging logs each delivery's outcome itself.
"""

from __future__ import annotations

import logging

TICKS = (
    "alerting.evaluate_due_rules",
    "alerting.dispatch_alert_events",
    "paging.escalate",
    "paging.deliver_notifications",
)
TICKS_NAMED = (
    "alerting: evaluate due rules",
    "alerting: dispatch alert events",
    "paging: escalate",
    "paging: deliver notifications",
)
CELERY_LOGGERS = ("celery.beat", "celery.worker.strategy", "celery.app.trace")


class QuietTicks(logging.Filter):
    def __init__(self, debug: bool = False) -> None:
        super().__init__()
        self.debug = debug

    def filter(self, record: logging.LogRecord) -> bool:
        if self.debug or record.levelno >= logging.WARNING or record.name not in CELERY_LOGGERS:
            return True
        message = record.getMessage()
        return not any(tick in message for tick in (*TICKS, *TICKS_NAMED))
