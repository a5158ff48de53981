"""Paging's metrics, declared next to the code that writes them (engine.py).

Labels take values from small known sets (channel kinds, events, outcomes, states).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# From a page in seconds to a policy's later steps and retries over an hour.
DELIVERY_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)

notifications = Counter(
    "controlplane_notifications_total",
    "Notification attempts, by channel kind, event and outcome "
    "(sent, retry: will be tried again, dead: given up).",
    ["channel_kind", "event", "outcome"],
)
notification_delivery = Histogram(
    "controlplane_notification_delivery_seconds",
    "From an alert's opening to the delivery of a trigger notification about it "
    "(a policy's later steps include their delay).",
    buckets=DELIVERY_BUCKETS,
)
notification_queue_depth = Gauge(
    "controlplane_notification_queue_depth",
    "Notifications not yet delivered, by state (pending, sending, failed).",
    ["state"],
    multiprocess_mode="mostrecent",
)
