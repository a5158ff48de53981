"""The demo's SLOs on the control plane's own API: availability and latency.

`make demo` runs it after `seed_demo`: with Prometheus running, the board (/slos/)
shows live numbers within a minute, and `manage.py drill` makes the availability SLO
burn (its 500s), then the latency one (its slow answers).
"""

from django.core.management.base import BaseCommand

from controlplane.catalog.actors import Actor
from controlplane.catalog.models import MetricSource, Organization
from controlplane.slo import documents, editing
from controlplane.slo.models import SLO

REQUESTS = "http_server_request_duration_seconds"
# Every request the server answers counts (pages, API, /metrics scrapes, the drill's).
DEMO_SLOS = [
    {
        "slug": "api-availability",
        "name": "Control plane API availability",
        "description": "Requests answered without a server error (5xx).",
        "service": "controlplane",
        "source": "self",
        "sli": {
            "kind": "ratio",
            "bad": f'{REQUESTS}_count{{http_response_status_code=~"5.."}}',
            "total": f"{REQUESTS}_count",
        },
        "objective": 99.9,
        "window": "30d",
        "min_events": 100,
    },
    {
        "slug": "api-latency",
        "name": "Control plane API latency",
        "description": "Requests answered within 200 ms.",
        "service": "controlplane",
        "source": "self",
        "sli": {"kind": "latency", "metric": REQUESTS, "selector": "", "threshold": 0.2},
        "objective": 95,
        "window": "month",
        "time_zone": "Europe/Paris",
        "min_events": 100,
    },
]


class Command(BaseCommand):
    help = "Create the demo organisation's SLOs (needs seed_demo with a Prometheus source)."

    def handle(self, *args, **options) -> None:
        organization = Organization.objects.filter(slug="demo").first()
        if (
            organization is None
            or not MetricSource.objects.filter(organization=organization, name="self").exists()
        ):
            self.stdout.write("Demo SLOs: none (no Prometheus source 'self' to read them from).")
            return
        actor = Actor.system("seed_demo_slos")
        for document in DEMO_SLOS:
            current = SLO.objects.filter(organization=organization, slug=document["slug"]).first()
            if current is not None:
                continue  # the manager's edits stay
            # Not checked against the source: the demo's Prometheus has just started and
            # holds no series yet. The bucket is the one observability declares (0.2).
            slo = documents.apply(organization, document, verify_source=False)
            if slo.kind == SLO.Kind.LATENCY:
                slo.bucket_le = "0.2"
            editing.save(slo, actor)
        self.stdout.write("Demo SLOs: api-availability (99.9%, 30d), api-latency (95% < 200 ms)")
