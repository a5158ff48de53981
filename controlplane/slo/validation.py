"""Checking an SLO's queries against its source before it is saved.

The admin form, the API and OpenSLO import all call `verify`, so an SLO refused in
one is refused in the others with the same message. As for rules, a parse error is
refused with Prometheus' own words, and a source that cannot answer does not block
saving: the SLO is saved with a note saying it was not checked.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError

from controlplane.catalog.sources import client_for
from controlplane.promql.client import BadQuery, PrometheusClient, SourceError
from controlplane.slo import queries
from controlplane.slo.models import SLO, format_le


def verify(slo: SLO) -> None:
    """Ask the source to parse every query of the SLO (and, for a latency SLI, to name
    its buckets). Raises ValidationError keyed by model field; sets bucket_le and
    verification_note."""
    if slo.source_id is None:
        return
    client = client_for(slo.source)
    # Someone waits for this answer in a request: bounded as rule checks are.
    client.timeout = min(client.timeout, settings.PROMQL_CHECK_SECONDS)
    try:
        if slo.kind == SLO.Kind.RATIO:
            for field in ("good", "bad", "total"):
                selector = getattr(slo, field).strip()
                if selector:
                    _parses(client, field, f"increase(({selector})[5m:1m])", selector)
                    _parses(client, field, f"increase({selector}[5m])", selector, counter=True)
        elif slo.kind == SLO.Kind.LATENCY:
            _verify_latency(client, slo)
        elif slo.kind == SLO.Kind.THRESHOLD:
            _parses(client, "expr", slo.expr, slo.expr)
            # And as the evaluation sends it: an expression that parses alone may still
            # not compare per slice (a range vector, a scalar).
            if slo.op and slo.threshold is not None:
                _parses(client, "expr", queries.slice_good(slo.definition()), slo.expr)
    except SourceError as error:
        if slo.kind == SLO.Kind.LATENCY and not _same_bound(slo.bucket_le, slo.threshold):
            # Not the old threshold's bucket: the usual spelling until the source can say.
            slo.bucket_le = format_le(slo.threshold or 0)
        slo.verification_note = f"Not checked: {error.message}"
    else:
        slo.verification_note = ""


def _parses(
    client: PrometheusClient, field: str, query: str, shown: str, counter: bool = False
) -> None:
    try:
        client.validate(query)
    except BadQuery as error:
        if counter:
            raise ValidationError(
                {
                    field: f'Not a counter selector such as http_requests_total{{code=~"5.."}}: '
                    f"Prometheus says {error.message}"
                }
            ) from None
        raise ValidationError({field: f"Prometheus refused {shown!r}: {error.message}"}) from None


def _verify_latency(client: PrometheusClient, slo: SLO) -> None:
    query = queries.latency_buckets_query(slo.metric, slo.selector.strip())
    try:
        client.validate(query)
    except BadQuery as error:
        raise ValidationError(
            {"selector": f"Prometheus refused the label filter: {error.message}"}
        ) from None
    samples = client.query(query)
    les = sorted({sample.labels.get("le", "") for sample in samples} - {""}, key=_bound)
    if not les:
        raise ValidationError(
            {
                "metric": f"The source has no series {slo.metric}_bucket"
                + (f"{{{slo.selector.strip()}}}" if slo.selector.strip() else "")
                + ": check the histogram's name and the label filter."
            }
        )
    found = queries.bucket_for(float(slo.threshold or 0), les)
    if found is None:
        raise ValidationError(
            {
                "threshold": f"No bucket of {slo.metric} is at {slo.threshold:g} s; "
                f"the buckets are {', '.join(les)}."
            }
        )
    slo.bucket_le = found


def _same_bound(le: str, threshold: float | None) -> bool:
    try:
        return bool(le) and threshold is not None and float(le) == threshold
    except ValueError:
        return False


def _bound(le: str) -> float:
    try:
        return float(le)
    except ValueError:
        return float("inf")
