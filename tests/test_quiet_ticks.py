"""Beat's ticks stay out of the INFO log; everything else, and any failure, stays in."""

import logging

import pytest

from controlplane.quiet_ticks import QuietTicks


def record(logger: str, level: int, message: str) -> logging.LogRecord:
    return logging.LogRecord(logger, level, __file__, 1, message, None, None)


@pytest.mark.parametrize(
    ("logger", "level", "message", "kept"),
    [
        ("celery.app.trace", logging.INFO, "Task alerting.evaluate_due_rules[1] succeeded", False),
        (
            "celery.worker.strategy",
            logging.INFO,
            "Task alerting.dispatch_alert_events[2] received",
            False,
        ),
        (
            "celery.beat",
            logging.INFO,
            "Scheduler: Sending due task alerting: evaluate due rules (alerting...)",
            False,
        ),
        ("celery.app.trace", logging.INFO, "Task paging.escalate[5] succeeded in 0.01s: 0", False),
        (
            "celery.beat",
            logging.INFO,
            "Scheduler: Sending due task paging: deliver notifications (paging...)",
            False,
        ),
        ("celery.app.trace", logging.INFO, "Task alerting.evaluate_rules[3] succeeded", True),
        ("celery.app.trace", logging.ERROR, "Task alerting.evaluate_due_rules[4] raised", True),
        ("controlplane", logging.INFO, "alerting.evaluate_due_rules is mentioned", True),
    ],
)
def test_quiet_ticks(logger, level, message, kept):
    assert QuietTicks().filter(record(logger, level, message)) is kept


def test_debug_shows_the_ticks():
    message = "Task alerting.evaluate_due_rules[1] succeeded"
    assert QuietTicks(debug=True).filter(record("celery.app.trace", logging.INFO, message)) is True
