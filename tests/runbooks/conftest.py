from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from runbooks.models import Runbook, Via
from tests.runbooks.samples import BODY


@pytest.fixture
def make_runbook(db):
    """make_runbook(slug, organization=None, **fields) -> a saved Runbook with one revision."""

    def make(slug: str = "checkout-errors", organization=None, **fields) -> Runbook:
        values = {
            "title": slug.replace("-", " ").capitalize(),
            "summary": f"What to do about {slug}.",
            "body": BODY,
            "owner": "platform-sre",
            "tags": ["api"],
            "reviewed_at": datetime.date(2026, 11, 27),
            **fields,
        }
        runbook = Runbook(organization=organization, slug=slug, **values)
        runbook.full_clean()
        runbook.save_change(changed_by=fields.get("updated_by"), via=Via.ADMIN)
        return runbook

    return make


@pytest.fixture
def pages_dir(tmp_path) -> Path:
    """An empty directory for runbook files: write(slug, text=None) adds one."""
    directory = tmp_path / "pages"
    directory.mkdir()
    return directory
