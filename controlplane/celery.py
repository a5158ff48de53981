"""The Celery application: schedules live in the database (django-celery-beat)."""

import os

from celery import Celery
from kombu.transport import TRANSPORT_ALIASES

from observability.celery import register_queue_length

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
# The embedded broker writes each message whole (see controlplane/broker.py).
TRANSPORT_ALIASES["filesystem"] = "controlplane.broker:Transport"

app = Celery("controlplane")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# The project's own tasks (the heartbeat, the probe): controlplane is no installed app,
# so autodiscovery does not find them.
app.autodiscover_tasks(["controlplane"])
# celery_queue_length{queue}: the backlog of the app's queues, asked of the broker when
# /metrics is scraped (nothing is read here, at import).
register_queue_length(app)
