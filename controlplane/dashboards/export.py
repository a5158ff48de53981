"""Every dashboard by file name (`build_all`, pure), and writing them (`write`).

File names are stable: `control-plane.json`, `slos.json`, `jobs.json`, and one
`slo/<organisation>/<slug>.json` per SLO (a folder per organisation, which the
provider's foldersFromFilesStructure turns into Grafana folders). The three shared
dashboards depend on no database row: deploy/grafana/dashboards/ holds them as
`build_all([])` makes them, committed, and a test keeps them equal.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from controlplane.dashboards import control_plane, jobs, slos
from controlplane.slo.definition import Definition

SHARED = {
    "control-plane.json": control_plane.build,
    "slos.json": slos.build_overview,
    "jobs.json": jobs.build,
}


@dataclass
class Export:
    """The dashboards to write by file name, and the SLOs left out with the reason."""

    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # "org/slug": why
    skipped: dict[str, str] = field(default_factory=dict)  # measured elsewhere


def slo_file(organization: str, slug: str) -> str:
    return f"slo/{organization}/{slug}.json"


def build_all(
    definitions: Iterable[tuple[str, Definition]], at: datetime, *, site_url: str = ""
) -> Export:
    """The shared dashboards, and one per (organisation slug, SLO definition) at `at`.
    An SLO whose dashboard cannot be built is in `failed`, the others are built."""
    export = Export({name: build() for name, build in SHARED.items()})
    for organization, definition in definitions:
        name = f"{organization}/{definition.slug}"
        if not slos.exported(definition):
            export.skipped[name] = (
                f"an {type(definition.indicator).__name__.upper()} objective is measured by "
                "the control plane from job runs and alerts, not by Prometheus"
            )
            continue
        try:
            export.dashboards[slo_file(organization, definition.slug)] = slos.build_slo(
                organization, definition, at, site_url=site_url
            )
        except ValueError as error:
            export.failed[name] = str(error)
    uids: dict[str, str] = {}
    for name, doc in export.dashboards.items():
        if doc["uid"] in uids:
            raise ValueError(f"{name} and {uids[doc['uid']]} have the same uid {doc['uid']}")
        uids[doc["uid"]] = name
    return export


def dumps(doc: Mapping[str, Any]) -> str:
    """A dashboard as its file holds it: sorted keys, so that a diff shows real changes."""
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write(dashboards: Mapping[str, Mapping[str, Any]], directory: Path) -> list[Path]:
    """Write every dashboard under `directory`, each file whole or not at all (a
    temporary file renamed over it). Returns the paths written."""
    written = []
    for name, doc in dashboards.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                file.write(dumps(doc))
            os.chmod(temporary, 0o644)  # mkstemp's 0600 would hide it from Grafana's user
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        written.append(path)
    return written
