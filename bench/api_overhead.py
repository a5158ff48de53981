"""Requests per second of GET /api/v1/services/ with the observability stack on and off.

Each measurement runs in its own process (settings are read once per process), and
the two configurations alternate so that machine noise hits both alike.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.report import Budget

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = 3
REQUESTS = 1500
WARMUP = 200
OBSERVABILITY_MIDDLEWARE = ("observability.", "django_prometheus.")


def measure(observability: bool, requests: int) -> float:
    """Run inside a fresh process: seed a database, then time the requests."""
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.test import Client

    if not observability:
        settings.MIDDLEWARE = [
            m for m in settings.MIDDLEWARE if not m.startswith(OBSERVABILITY_MIDDLEWARE)
        ]
    call_command("migrate", verbosity=0)
    from controlplane.catalog.models import ApiToken, Organization, Service

    org = Organization.objects.create(slug="bench", name="Bench")
    Service.objects.bulk_create(
        Service(organization=org, slug=f"svc-{i}", name=f"Service {i}") for i in range(20)
    )
    _, token = ApiToken.issue(org, ApiToken.Scope.READ)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_HOST="localhost")
    for _ in range(WARMUP):
        client.get("/api/v1/services/")
    started = time.perf_counter()
    for _ in range(requests):
        response = client.get("/api/v1/services/")
        assert response.status_code == 200, response.content
    return requests / (time.perf_counter() - started)


def run_child(observability: bool) -> float:
    with tempfile.TemporaryDirectory() as var:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "controlplane.settings",
            "VAR_DIR": var,
            "DATABASE_URL": "",
            "DEBUG": "false",
            "SECRET_KEY": "bench-only-secret-key-0123456789abcdef",
            "OBSERVABILITY_ENABLED": "true" if observability else "false",
            "LOG_LEVEL": "WARNING",
            "CELERY_BROKER_URL": "memory://",
        }
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.api_overhead",
                "--child",
                "on" if observability else "off",
                "--requests",
                str(REQUESTS),
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads(out.stdout.strip().splitlines()[-1])["rps"]


def run() -> list[Budget]:
    on, off = [], []
    for _ in range(ROUNDS):
        off.append(run_child(False))
        on.append(run_child(True))
    print(f"  api rps with observability: {', '.join(f'{x:.0f}' for x in on)}")
    print(f"  api rps without:            {', '.join(f'{x:.0f}' for x in off)}")
    return [
        Budget(
            "api.requests_per_second (observability on / off)",
            measured=statistics.median(on),
            baseline=statistics.median(off),
            unit="req/s",
            goal=0.85,
            note=f"median of {ROUNDS} alternating rounds of {REQUESTS} requests",
        )
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", choices=["on", "off"], required=True)
    parser.add_argument("--requests", type=int, default=REQUESTS)
    args = parser.parse_args()
    print(json.dumps({"rps": measure(args.child == "on", args.requests)}))
