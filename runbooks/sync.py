"""Runbooks as code: load Markdown files into runbooks, all of them or none.

Every file is read and checked before anything is written, and the writes happen in
one transaction, so a broken file in a release changes nothing at all.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from controlplane.catalog.models import Organization
from runbooks import files
from runbooks.models import Runbook, Via


class Outcome(enum.StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    KEPT_EDIT = "kept admin edit"
    CONFLICT = "conflict"
    FORCED = "forced"


def decide(file_digest: str, current: str | None, synced: str, force: bool) -> Outcome:
    """What to do with one file, from three digests.

    current is the runbook's content now (None: no runbook yet); synced is its content
    right after the last sync. current != synced means someone edited it in the admin;
    file != synced means the file changed since.
    """
    if current is None:
        return Outcome.CREATED
    if file_digest == current:
        return Outcome.UNCHANGED
    if file_digest == synced:
        return Outcome.KEPT_EDIT
    if current == synced:
        return Outcome.UPDATED
    return Outcome.FORCED if force else Outcome.CONFLICT


@dataclass(frozen=True)
class Loaded:
    path: Path
    file: files.RunbookFile

    @property
    def slug(self) -> str:
        return self.file.metadata.slug


@dataclass
class Report:
    outcomes: dict[Outcome, list[str]] = field(default_factory=dict)
    without_file: list[str] = field(default_factory=list)

    def add(self, outcome: Outcome, slug: str) -> None:
        self.outcomes.setdefault(outcome, []).append(slug)

    def count(self, outcome: Outcome) -> int:
        return len(self.outcomes.get(outcome, []))

    def slugs(self, outcome: Outcome) -> list[str]:
        return self.outcomes.get(outcome, [])


def display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path(settings.BASE_DIR).resolve()))
    except ValueError:
        return str(path)


def read_directory(directory: Path) -> tuple[list[Loaded], list[str]]:
    """Every *.md file parsed, and one error line per file that is not fit to load."""
    loaded: list[Loaded] = []
    errors: list[str] = []
    for path in sorted(directory.glob("*.md")):
        name = display_path(path)
        try:
            parsed = files.parse(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            errors.append(f"{name}: not UTF-8 text")
            continue
        except OSError as error:
            errors.append(f"{name}: cannot be read ({error.strerror})")
            continue
        except files.FrontMatterError as error:
            errors.append(f"{name}: {error}")
            continue
        if parsed.metadata.slug != path.stem:
            errors.append(
                f"{name}: slug '{parsed.metadata.slug}' must match the file name '{path.stem}'"
            )
            continue
        problem = _model_errors(parsed)
        if problem:
            errors.append(f"{name}: {problem}")
            continue
        loaded.append(Loaded(path=path, file=parsed))
    return loaded, errors


def _model_errors(parsed: files.RunbookFile) -> str:
    try:
        _fill(Runbook(), parsed).full_clean(
            exclude=["organization"], validate_unique=False, validate_constraints=False
        )
    except ValidationError as error:
        return "; ".join(
            f"{key}: {' '.join(messages)}" for key, messages in error.message_dict.items()
        )
    return ""


def _fill(runbook: Runbook, parsed: files.RunbookFile) -> Runbook:
    meta = parsed.metadata
    runbook.slug = meta.slug
    runbook.title = meta.title
    runbook.summary = meta.summary
    runbook.body = parsed.body
    runbook.tags = list(meta.tags)
    runbook.owner = meta.owner
    runbook.reviewed_at = meta.reviewed_at
    return runbook


def apply(loaded: list[Loaded], organization: Organization | None, force: bool) -> Report:
    """Create and update runbooks from checked files, in one transaction."""
    report = Report()
    with transaction.atomic():
        scope = Runbook.objects.select_for_update()
        scope = (
            scope.filter(organization=organization)
            if organization is not None
            else scope.filter(organization__isnull=True)
        )
        existing = {runbook.slug: runbook for runbook in scope}
        for item in loaded:
            runbook = existing.get(item.slug)
            digest = item.file.digest
            outcome = decide(
                digest,
                runbook.digest if runbook else None,
                runbook.synced_digest if runbook else "",
                force,
            )
            report.add(outcome, item.slug)
            source_path = display_path(item.path)
            if outcome in {Outcome.CREATED, Outcome.UPDATED, Outcome.FORCED}:
                runbook = runbook or Runbook(organization=organization)
                _fill(runbook, item.file)
                runbook.source_path = source_path
                runbook.synced_digest = digest
                runbook.save_change(changed_by=None, via=Via.SYNC)
            elif outcome is Outcome.UNCHANGED and runbook.synced_digest != digest:
                # Same text reached from both sides (or a runbook first made in the admin):
                # remember it as synced, which is bookkeeping, not a change.
                Runbook.objects.filter(pk=runbook.pk).update(
                    synced_digest=digest, source_path=source_path
                )
        file_slugs = {item.slug for item in loaded}
        report.without_file = sorted(
            slug
            for slug, runbook in existing.items()
            if runbook.source_path and slug not in file_slugs
        )
    return report
