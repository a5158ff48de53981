"""The circuit breaker on PostgreSQL: two workers claiming a probe for one organisation
at the same moment end with one probe."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from controlplane.catalog import circuit
from controlplane.catalog.models import MetricSource, SourceHealth
from tests.services import require_postgresql
from tests.waiting import DEADLINE

pytestmark = pytest.mark.integration


@pytest.mark.django_db(transaction=True)
def test_two_workers_claiming_probes_for_one_organisation_at_once_get_one(org):
    # Both sources come off their backoff together (they failed together): of two
    # workers claiming at the same moment, exactly one probes.
    require_postgresql()
    sources = [
        MetricSource.objects.create(organization=org, name=f"dead{n}", url="http://10.0.0.1")
        for n in range(2)
    ]
    now = timezone.now()
    for source in sources:
        SourceHealth.objects.create(source=source)
        circuit.record(source.pk, answered=False, now=now - timedelta(minutes=5))
    barrier = threading.Barrier(2)
    admitted: list[bool] = []
    failures: list[BaseException] = []

    def claim(source) -> None:
        try:
            barrier.wait(DEADLINE)
            admitted.append(circuit.admit(source.pk, org.pk, 2.0, now).asked)
        except BaseException as error:  # reported below
            failures.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=claim, args=(source,)) for source in sources]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE)

    assert failures == []
    assert sorted(admitted) == [False, True]
