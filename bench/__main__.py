"""`make bench`: every budget, printed as a ratio against a baseline from the same run."""

from __future__ import annotations

import importlib
import os
import sys

# Benchmarks run with production-like settings; only the key is a stand-in.
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-0123456789abcdef")
os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("LOG_LEVEL", "WARNING")
# The bench's Prometheus listens on loopback, which the source guard refuses by default.
os.environ.setdefault("ALLOWED_SOURCE_NETWORKS", "127.0.0.0/8,::1/128")

# Each module has run() -> list[Budget]; later contexts add theirs here.
MODULES = [
    "bench.api_overhead",
    "bench.observability_overhead",
    "bench.rule_evaluation",
    "bench.paging",
    "bench.slo",
    "bench.audit",
]


def main() -> int:
    budgets = []
    for name in MODULES:
        print(f"{name} …", flush=True)
        budgets += importlib.import_module(name).run()
    print()
    for budget in budgets:
        print(budget.line())
    return 0 if all(b.met for b in budgets) else 1


if __name__ == "__main__":
    sys.exit(main())
