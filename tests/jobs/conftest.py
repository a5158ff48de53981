"""The job monitor tests count, list and page the monitors they make: the built-in
`audit-retention` monitor every new organisation gets (controlplane/audit/job.py) is
left out here, and tested in tests/audit/test_job.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db.models.signals import post_save

from controlplane.audit import job
from controlplane.catalog.models import Organization


@pytest.fixture(autouse=True)
def _without_the_builtin_retention_monitor() -> Iterator[None]:
    post_save.disconnect(sender=Organization, dispatch_uid=job.SEED_DISPATCH_UID)
    yield
    post_save.connect(
        job.seed_for_new_organization, sender=Organization, dispatch_uid=job.SEED_DISPATCH_UID
    )
