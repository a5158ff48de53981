"""The alerting engine's own internal signals (registered when the app is ready)."""

from __future__ import annotations

from django.db.models import Count
from django.utils import timezone

from controlplane.alerting.internal_signals import Series, register
from controlplane.alerting.models import Alert, Severity
from controlplane.catalog import sources


@register("alerts.firing", "Open alerts (firing or acknowledged) by severity.")
def alerts_firing(organization_id: int) -> list[Series]:
    counts = dict(
        Alert.objects.filter(organization_id=organization_id, is_test=False)
        .exclude(state=Alert.State.RESOLVED)
        .values_list("severity")
        .annotate(n=Count("pk"))
    )
    return [Series({"severity": s}, float(counts.get(s, 0))) for s in Severity.values]


@register(
    "sources.failing_seconds",
    "For each metric source that cannot be queried: seconds since it started failing.",
)
def sources_failing_seconds(organization_id: int) -> list[Series]:
    now = timezone.now()
    failing = sources.failing_since(organization_id)
    return [Series({"source": name}, (now - since).total_seconds()) for name, since in failing]
