"""What the observability package registers in a project of its own, and what it writes.

Run by test_standalone_metrics.py in a fresh interpreter, on the small project of
tests/observability/settings_standalone.py, because the test process already holds
every metric the control plane declares. It notes which code registers each
collector, imports every module of the package, sends one request through the
middleware and runs one job through the helper, then writes to the file named on
its command line::

    {"families": [every family name in the registry],
     "declared": {family declared by the package: whether anything wrote it}}
"""

from __future__ import annotations

import importlib
import json
import math
import os
import pkgutil
import sys
from pathlib import Path

from prometheus_client import REGISTRY
from prometheus_client.registry import Collector

os.environ["DJANGO_SETTINGS_MODULE"] = "tests.observability.settings_standalone"

PACKAGE = "observability"

declared: list[Collector] = []
_register = REGISTRY.register


def _register_noting_the_declarer(collector: Collector) -> None:
    # The first frame outside prometheus_client is the code that declared the metric,
    # however it did (at import, or later, as the job instruments are).
    frame = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__", "").startswith("prometheus_client"):
        frame = frame.f_back
    module = frame.f_globals.get("__name__", "") if frame is not None else ""
    if module == PACKAGE or module.startswith(f"{PACKAGE}."):
        declared.append(collector)
    _register(collector)


def _written(samples: list) -> bool:
    # An unlabelled metric shows zeros from the moment it is declared, so a sample
    # alone proves nothing; `_created` is the declaration time, not a write.
    return any(
        not sample.name.endswith("_created") and sample.value != 0 and not math.isnan(sample.value)
        for sample in samples
    )


def main(out: Path) -> None:
    REGISTRY.register = _register_noting_the_declarer  # type: ignore[method-assign]

    import django

    django.setup()
    package = importlib.import_module(PACKAGE)
    for module in pkgutil.walk_packages(package.__path__, f"{PACKAGE}."):
        importlib.import_module(module.name)

    from django.test import Client

    from observability.jobs import job_run

    Client().get("/ok/")
    with job_run("tests.standalone"):
        pass

    report = {
        "families": sorted(family.name for family in REGISTRY.collect()),
        "declared": {
            family.name: _written(family.samples)
            for collector in declared
            for family in collector.collect()
        },
    }
    out.write_text(json.dumps(report))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
