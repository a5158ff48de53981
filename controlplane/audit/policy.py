"""How long each kind of record is kept: the categories, their defaults, the checks.

Pure. `RETENTION_DAYS` in the environment changes the defaults for every organisation
(read and checked at start, controlplane/environment.py), a `RetentionOverride` for one;
both go through `check_days`. An organisation may keep a category longer or shorter
than the default, anywhere within the category's bounds: one day at least, a hundred
years at most, except SLO snapshots (below). docs/audit.md has the table.

What the retention removes of each category, and what it never removes, is in
controlplane/audit/retention.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

MAX_DAYS = 36_500

# The longest window an SLO measures, a calendar quarter: 92 days, and the hour a
# daylight-saving change may add. An SLO's chart reads its snapshots over the whole
# window, an RPO or RTO objective the job runs and incidents of it: a retention that
# would remove them inside that window is refused (SLO snapshots) or held back (the
# runs and incidents an objective reads, retention.py).
SLO_WINDOW_DAYS = 93
# The SLO history keeps no snapshot older than this (controlplane/slo/history.py's
# DAILY_UNTIL, which a test holds equal): keeping them longer cannot be asked for.
SLO_HISTORY_DAYS = 400
# Managers edit their organisation's retention, and the audit trail records their edits.
AUDIT_EVENTS_LEAST_DAYS = 30


@dataclass(frozen=True)
class Retention:
    """One category: its default, what it covers, and the days it may be set to."""

    default: int
    covers: str
    least: int = 1
    most: int = MAX_DAYS
    # Why the bounds are not the usual 1 to MAX_DAYS, said when a value is refused.
    bounds_reason: str = ""


CATEGORIES: dict[str, Retention] = {
    "audit_events": Retention(
        365,
        "audit events (a purge leaves a receipt that keeps the chain verifiable)",
        least=AUDIT_EVENTS_LEAST_DAYS,
        bounds_reason=(
            "a manager could otherwise have the trail of their own edits purged within "
            f"days: it is kept {AUDIT_EVENTS_LEAST_DAYS} days at least"
        ),
    ),
    "notifications": Retention(90, "notifications sent or given up, once their alert is resolved"),
    "job_runs": Retention(
        90,
        "finished job runs and their output excerpts (a monitor's last runs stay)",
    ),
    "alerts": Retention(180, "resolved alerts, by their resolution time, and their timelines"),
    "slo_snapshots": Retention(
        SLO_HISTORY_DAYS,
        "SLO snapshots (the SLO history thins them out before)",
        least=SLO_WINDOW_DAYS,
        most=SLO_HISTORY_DAYS,
        bounds_reason=(
            f"an SLO's chart reads its whole window, up to a calendar quarter "
            f"({SLO_WINDOW_DAYS} days), and the SLO history keeps none past "
            f"{SLO_HISTORY_DAYS} days"
        ),
    ),
}


class PolicyError(ValueError):
    """A retention setting that cannot be used; the message names it."""

    def __init__(self, message: str, field: str = "days") -> None:
        super().__init__(message)
        # The field of a RetentionOverride the message is about.
        self.field = field


def bounds(category: str) -> tuple[int, int]:
    retention = CATEGORIES[category]
    return retention.least, retention.most


def check_days(category: str, days: object) -> int:
    """The days, when `category` may be kept that long; else PolicyError naming both."""
    if category not in CATEGORIES:
        known = ", ".join(CATEGORIES)
        raise PolicyError(
            f"unknown retention category {category!r} (known: {known})", field="category"
        )
    if isinstance(days, bool) or not isinstance(days, int):
        raise PolicyError(f"the retention of {category} must be a whole number of days")
    retention = CATEGORIES[category]
    reason = f" ({retention.bounds_reason})" if retention.bounds_reason else ""
    if days < retention.least:
        unit = "day" if retention.least == 1 else "days"
        raise PolicyError(
            f"the retention of {category} must be at least {retention.least} {unit}, "
            f"got {days}{reason}"
        )
    if days > retention.most:
        raise PolicyError(
            f"the retention of {category} must be at most {retention.most} days, got {days}{reason}"
        )
    return days


def defaults(environment: Mapping[str, int] | None = None) -> dict[str, int]:
    """Days per category: the built-in defaults with the environment's changes."""
    days = {category: retention.default for category, retention in CATEGORIES.items()}
    for category, value in (environment or {}).items():
        days[category] = check_days(category, value)
    return days


def with_overrides(base: Mapping[str, int], overrides: Mapping[str, int]) -> dict[str, int]:
    """`base` (from `defaults`) with one organisation's overrides, each checked again:
    a row written past the model's checks must not slip through unnoticed."""
    days = dict(base)
    for category, value in overrides.items():
        days[category] = check_days(category, value)
    return days
