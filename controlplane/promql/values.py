"""NaN and infinities as Prometheus writes them.

JSON (and PostgreSQL jsonb) has no numbers for NaN, +Inf and -Inf, which PromQL
yields (0/0, x/0): they travel as Prometheus' own strings, which float() reads back.
"""

from __future__ import annotations

import math

NON_FINITE = ("NaN", "+Inf", "-Inf")


def spell(value: float) -> str | None:
    """Prometheus' spelling of a non-finite value; None for a finite one."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return None


def to_json(value: float) -> float | str:
    """A value fit for JSON: finite numbers as they are, the rest spelled out."""
    return spell(value) or value
