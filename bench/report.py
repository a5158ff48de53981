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

    @property
    def ratio(self) -> float:
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
