"""Prometheus duration syntax: "30s", "5m", "1h30m", "2d", "1w", "0s".

Units, largest first and each at most once: y (365 days), w, d, h, m, s, ms.
Rule `for` and `keep_firing_for` fields are written this way so that they read
the same in the admin as in a Prometheus rule file.
"""

import re
from datetime import timedelta

_UNITS_MS = (
    ("y", 365 * 24 * 3600 * 1000),
    ("w", 7 * 24 * 3600 * 1000),
    ("d", 24 * 3600 * 1000),
    ("h", 3600 * 1000),
    ("m", 60 * 1000),
    ("s", 1000),
    ("ms", 1),
)

_PATTERN = re.compile("".join(rf"(?:(?P<{unit}>[0-9]+){unit})?" for unit, _ in _UNITS_MS))

# Far beyond any sensible rule setting, and within what every database can store.
LONGEST = timedelta(days=100 * 365)

_EXAMPLES = 'use a number and a unit (ms, s, m, h, d, w, y), largest first, as in "1h30m"'


def parse_duration(text: str) -> timedelta:
    """Parse a Prometheus duration; raise ValueError saying what is wrong."""
    if not isinstance(text, str):
        raise ValueError(f"duration must be text, not {type(text).__name__}")
    if not text:
        raise ValueError(f"duration is empty: {_EXAMPLES}")
    if text.startswith("-"):
        raise ValueError(f"duration {text!r} is negative: durations cannot be negative")
    if text == "0":
        return timedelta(0)
    if len(text) > 40:
        raise ValueError(f"duration {text[:20]!r}… is too long: at most 100y")

    match = _PATTERN.fullmatch(text)
    if match is None:
        raise ValueError(f"duration {text!r} is not valid: {_EXAMPLES}")

    total_ms = 0
    for unit, unit_ms in _UNITS_MS:
        amount = match.group(unit)
        if amount is not None:
            total_ms += int(amount) * unit_ms
    if total_ms > LONGEST // timedelta(milliseconds=1):
        raise ValueError(f"duration {text!r} is too long: at most 100y")
    return timedelta(milliseconds=total_ms)


def format_duration(value: timedelta) -> str:
    """Format as Prometheus does ("1h30m", "0s"); below a millisecond is dropped."""
    if value < timedelta(0):
        raise ValueError(f"cannot format a negative duration ({value})")
    remaining = value // timedelta(milliseconds=1)
    if remaining == 0:
        return "0s"
    parts = []
    for unit, unit_ms in _UNITS_MS:
        amount, remaining = divmod(remaining, unit_ms)
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts)
