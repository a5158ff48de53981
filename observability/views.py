import hmac
import os

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_safe
from prometheus_client import REGISTRY, CollectorRegistry, multiprocess
from prometheus_client.exposition import choose_encoder

from observability import metrics as instruments
from observability import options

BEARER = "bearer "


def authorized(header: str, token: str) -> bool:
    """Whether an Authorization header carries the bearer token; any header does when
    no token is set. Compared in constant time, so response times do not reveal how
    much of a guess was right."""
    if not token:
        return True
    scheme, given = header[: len(BEARER)], header[len(BEARER) :].strip()
    if scheme.lower() != BEARER:
        return False
    return hmac.compare_digest(given.encode(), token.encode())


@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition of this process, or of every process sharing
    PROMETHEUS_MULTIPROC_DIR (gunicorn workers, Celery workers on the same host).

    With OBSERVABILITY["METRICS_TOKEN"] set, only to requests that send it.
    """
    if not authorized(request.headers.get("Authorization", ""), options.load().metrics_token):
        response = HttpResponse(
            "Send the metrics token: Authorization: Bearer <token>.\n",
            status=401,
            content_type="text/plain; charset=utf-8",
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        for collector in instruments.live_collectors():
            registry.register(collector)
    else:
        registry = REGISTRY
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encode(registry), content_type=content_type)
