"""/healthz: instant, and its worker check is one read of beat's heartbeat, never a
round trip to a worker that an anonymous caller could make the web worker wait on."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from controlplane import views
from controlplane.catalog.models import WorkerHeartbeat
from controlplane.tasks import FORGET_WORKERS_AFTER, heartbeat

pytestmark = pytest.mark.django_db


def test_healthz_answers_from_the_database_alone(client, django_assert_max_num_queries):
    with django_assert_max_num_queries(1):
        response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


@pytest.mark.parametrize(
    ("age", "status", "worker"),
    [
        (None, 503, "no worker has run the heartbeat yet"),
        (timedelta(seconds=3), 200, "ok"),
        (views.HEARTBEAT_FRESH + timedelta(seconds=5), 503, "no heartbeat for"),
    ],
)
def test_the_worker_check_reads_the_newest_heartbeat(
    client, django_assert_max_num_queries, age, status, worker
):
    if age is not None:
        now = timezone.now()
        WorkerHeartbeat.objects.create(worker="old@host", seen_at=now - age - timedelta(hours=1))
        WorkerHeartbeat.objects.create(worker="new@host", seen_at=now - age)

    with django_assert_max_num_queries(2):  # SELECT 1, and one read of the newest row
        response = client.get("/healthz?worker=1")

    assert response.status_code == status
    assert response.json()["worker"].startswith(worker)
    assert response.json()["status"] == ("ok" if status == 200 else "degraded")


def test_the_heartbeat_task_records_its_worker_and_forgets_long_gone_ones():
    gone = WorkerHeartbeat.objects.create(
        worker="gone@host", seen_at=timezone.now() - FORGET_WORKERS_AFTER - timedelta(minutes=1)
    )

    worker = heartbeat.apply().get()

    assert WorkerHeartbeat.objects.get(worker=worker).seen_at > timezone.now() - timedelta(
        minutes=1
    )
    assert not WorkerHeartbeat.objects.filter(pk=gone.pk).exists()


def test_the_heartbeat_is_scheduled_by_a_data_migration():
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.get(task="controlplane.heartbeat")
    assert task.enabled
    assert (task.interval.every, task.interval.period) == (views.HEARTBEAT_EVERY, "seconds")
