"""Two evaluations racing to open the same alert on PostgreSQL end with one alert."""

import pytest

from controlplane.alerting import lifecycle
from controlplane.alerting.models import Alert, AlertRule
from controlplane.catalog.actors import BEAT
from tests.races import race
from tests.services import require_postgresql

pytestmark = pytest.mark.integration


@pytest.mark.django_db(transaction=True)
def test_racing_open_alert_calls_open_one_alert(org):
    require_postgresql()
    rule = AlertRule.objects.create(organization=org, key="race", name="race", expr="alerts.firing")
    results = race(
        8, lambda: lifecycle.open_alert(rule, "fp-race", {"a": "b"}, 1.0, {}, actor=BEAT)
    )
    assert Alert.objects.filter(fingerprint="fp-race").count() == 1
    assert sum(created for _, created in results) == 1
    assert len({alert.pk for alert, _ in results}) == 1
