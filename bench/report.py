"""One line per budget: what was measured, the baseline from the same run, the ratio."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Budget:
    name: str
    measured: float
    baseline: float
    unit: str
    goal: float  # the ratio measured / baseline must be at least this
    note: str = ""
    # When the figures come in rounds, the median of the per-round ratios: each round's
    # variants ran within seconds of each other, so a slow spell of the machine cancels
    # out in its ratio, where it would not between medians taken apart.
    paired: float | None = None

    @property
    def ratio(self) -> float:
        if self.paired is not None:
            return self.paired
        return self.measured / self.baseline if self.baseline else 0.0

    @property
    def met(self) -> bool:
        return self.ratio >= self.goal

    def line(self) -> str:
        verdict = "ok" if self.met else "OVER BUDGET"
        return (
            f"{self.name}: {self.measured:,.1f} {self.unit} vs baseline {self.baseline:,.1f} "
            f"{self.unit} -> ratio {self.ratio:.3f} (goal >= {self.goal}) {verdict}"
            + (f"  [{self.note}]" if self.note else "")
        )


@dataclass(frozen=True)
class Overhead:
    """A cost added on top of a baseline from the same run, with a ceiling on it."""

    name: str
    measured: float
    baseline: float
    added: float  # measured - baseline, paired per round, so not always their difference
    unit: str
    limit: float  # the added cost must be at most this
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.measured / self.baseline if self.baseline else 0.0

    @property
    def met(self) -> bool:
        return self.added <= self.limit

    def line(self) -> str:
        verdict = "ok" if self.met else "OVER BUDGET"
        return (
            f"{self.name}: {self.measured:,.1f} {self.unit} vs baseline {self.baseline:,.1f} "
            f"{self.unit} -> added {self.added:+,.1f} {self.unit}, ratio {self.ratio:.3f} "
            f"(goal: added <= {self.limit:g} {self.unit}) {verdict}"
            + (f"  [{self.note}]" if self.note else "")
        )
