"""The OBSERVABILITY setting, with its defaults filled in."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

# A metric name prefix, without the colon that Prometheus keeps for recording rules.
_NAMESPACE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# What may follow "Bearer " in an Authorization header (RFC 6750's b64token).
_BEARER_TOKEN = re.compile(r"[A-Za-z0-9._~+/-]+=*")
# A dotted path to a function: "package.module.function".
_DOTTED_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+")


@dataclass(frozen=True)
class Options:
    enabled: bool = True
    service_name: str = "django"
    otlp_endpoint: str = ""
    log_spans: bool = False
    request_id_header: str = "X-Request-Id"
    # Prefix of the job-run metrics: "billing" names them billing_job_runs_total and
    # so on; left empty they are job_runs_total, as neutral as the package.
    job_metrics_namespace: str = ""
    # When set, /metrics answers only requests with "Authorization: Bearer <token>".
    metrics_token: str = ""
    # Dotted path of a function user -> str naming the signed-in user in log lines
    # (`user_id`) and spans (`enduser.id`); empty: the user's primary key.
    user_id: str = ""


def load() -> Options:
    """Read settings.OBSERVABILITY; keys it leaves out come from the OTel environment.

    An explicit setting wins, so a project that already folds the environment into
    its settings keeps control.
    """
    given = getattr(settings, "OBSERVABILITY", None) or {}
    unknown = set(given) - _KEYS
    if unknown:
        raise ImproperlyConfigured(f"OBSERVABILITY has unknown keys: {', '.join(sorted(unknown))}")
    defaults = Options()
    namespace = given.get("JOB_METRICS_NAMESPACE") or defaults.job_metrics_namespace
    # Checked here, at start-up, rather than by prometheus_client at the first job run.
    if namespace and not (isinstance(namespace, str) and _NAMESPACE.fullmatch(namespace)):
        raise ImproperlyConfigured(
            f"OBSERVABILITY['JOB_METRICS_NAMESPACE'] must be letters, digits and underscores, "
            f"not starting with a digit: {namespace!r}"
        )
    metrics_token = given.get("METRICS_TOKEN") or defaults.metrics_token
    if metrics_token and not (
        isinstance(metrics_token, str) and _BEARER_TOKEN.fullmatch(metrics_token)
    ):
        # The value is a secret: never in the message.
        raise ImproperlyConfigured(
            "OBSERVABILITY['METRICS_TOKEN'] must be a string of letters, digits and "
            ". _ ~ + / - (and = at the end), as a bearer token is"
        )
    user_id = given.get("USER_ID") or defaults.user_id
    if user_id and not (isinstance(user_id, str) and _DOTTED_PATH.fullmatch(user_id)):
        raise ImproperlyConfigured(
            "OBSERVABILITY['USER_ID'] must be the dotted path of a function taking a user "
            f"and returning a string, e.g. 'myproject.people.pseudonym', not {user_id!r}"
        )
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
        job_metrics_namespace=namespace,
        metrics_token=metrics_token,
        user_id=user_id,
    )


def primary_key(user: Any) -> str:
    """The default OBSERVABILITY["USER_ID"]: the user's primary key, as a string."""
    return str(user.pk)


def user_identifier(path: str) -> Callable[[Any], str | None]:
    """The function OBSERVABILITY["USER_ID"] names (`primary_key` when empty).

    Imported when the middleware starts, so a wrong path stops the start.
    """
    if not path:
        return primary_key
    try:
        function = import_string(path)
    except ImportError as error:
        raise ImproperlyConfigured(f"OBSERVABILITY['USER_ID']: {error}") from None
    if not callable(function):
        raise ImproperlyConfigured(f"OBSERVABILITY['USER_ID']: {path} is not a function")
    return function


_checked_namespaces: set[str] = set()


def job_metrics_namespace() -> str:
    """OBSERVABILITY["JOB_METRICS_NAMESPACE"], read at every job run without the rest of
    ``load()``: a value is checked (by ``load()``, with its message) the first time it
    is seen, then only looked up.
    """
    given = getattr(settings, "OBSERVABILITY", None) or {}
    namespace = given.get("JOB_METRICS_NAMESPACE") or ""
    if namespace not in _checked_namespaces:
        namespace = load().job_metrics_namespace
        _checked_namespaces.add(namespace)
    return namespace


_KEYS = {
    "ENABLED",
    "SERVICE_NAME",
    "OTLP_ENDPOINT",
    "LOG_SPANS",
    "REQUEST_ID_HEADER",
    "JOB_METRICS_NAMESPACE",
    "METRICS_TOKEN",
    "USER_ID",
}
