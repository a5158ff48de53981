"""Two evaluations racing to open the same alert on PostgreSQL end with one alert."""

import threading

import pytest
from django.db import connection

from controlplane.alerting import lifecycle
from controlplane.alerting.models import Alert, AlertRule
from controlplane.catalog.actors import BEAT
from tests.services import require_postgresql

pytestmark = pytest.mark.integration


@pytest.mark.django_db(transaction=True)
def test_racing_open_alert_calls_open_one_alert(org):
    require_postgresql()
    rule = AlertRule.objects.create(organization=org, key="race", name="race", expr="alerts.firing")
    racers = 8
    barrier = threading.Barrier(racers)
    results, errors = [], []

    def race():
        try:
            barrier.wait(timeout=10)
            results.append(lifecycle.open_alert(rule, "fp-race", {"a": "b"}, 1.0, {}, actor=BEAT))
        except Exception as error:  # surfaced below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=race) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert Alert.objects.filter(fingerprint="fp-race").count() == 1
    assert sum(created for _, created in results) == 1
    assert len({alert.pk for alert, _ in results}) == 1
