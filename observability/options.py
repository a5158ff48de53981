"""The OBSERVABILITY setting, with its defaults filled in."""

from __future__ import annotations

import os
from dataclasses import dataclass

from django.conf import settings


@dataclass(frozen=True)
class Options:
    enabled: bool = True
    service_name: str = "django"
    otlp_endpoint: str = ""
    log_spans: bool = False
    request_id_header: str = "X-Request-Id"


def load() -> Options:
    """Read settings.OBSERVABILITY; keys it leaves out come from the OTel environment.

    An explicit setting wins, so a project that already folds the environment into
    its settings keeps control.
    """
    given = getattr(settings, "OBSERVABILITY", None) or {}
    unknown = set(given) - _KEYS
    if unknown:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(f"OBSERVABILITY has unknown keys: {', '.join(sorted(unknown))}")
    defaults = Options()
    return Options(
        enabled=bool(given.get("ENABLED", defaults.enabled)),
        service_name=given.get("SERVICE_NAME")
        or os.environ.get("OTEL_SERVICE_NAME")
        or defaults.service_name,
        otlp_endpoint=(
            given["OTLP_ENDPOINT"]
            if "OTLP_ENDPOINT" in given
            else os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        )
        or defaults.otlp_endpoint,
        log_spans=bool(given.get("LOG_SPANS", defaults.log_spans)),
        request_id_header=given.get("REQUEST_ID_HEADER") or defaults.request_id_header,
    )


_KEYS = {"ENABLED", "SERVICE_NAME", "OTLP_ENDPOINT", "LOG_SPANS", "REQUEST_ID_HEADER"}
