"""An outbox consumer for the killed-worker test, loaded by real workers through
ALERT_EVENT_CONSUMERS. It logs each attempt to a file (outside the database, so
attempts rolled back still show), and while a `hold` file exists it never returns:
the worker holding the event is then killed."""

from __future__ import annotations

import os
import time
from pathlib import Path


def held(event) -> str:
    directory = Path(os.environ["OUTBOX_TEST_DIR"])
    with (directory / "attempts.log").open("a") as log:
        log.write(f"{event.pk} {os.getpid()}\n")
    deadline = time.monotonic() + 300  # bounded: the test kills us long before
    while (directory / "hold").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return f"recorded by {os.getpid()}"
