"""Delivery as the task does it: round after round until one finds nothing to send."""

from __future__ import annotations

from datetime import datetime

from controlplane.paging import engine

MOST_ROUNDS = 50


def deliver_rounds(now: datetime | None = None) -> dict[str, int]:
    """Every round `now` allows (each round sends a channel at most a few messages);
    the tally of all of them."""
    tally: dict[str, int] = {}
    for _ in range(MOST_ROUNDS):
        done = engine.deliver_due(now)
        if not done:
            return tally
        for state, count in done.items():
            tally[state] = tally.get(state, 0) + count
    raise AssertionError(f"still sending after {MOST_ROUNDS} rounds")
