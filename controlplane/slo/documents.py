"""SLOs as code: the JSON document the API reads and writes and OpenSLO converts to.

    {"slug": "api-availability", "name": "API availability", "service": "api",
     "source": "prometheus", "objective": 99.9, "window": "30d", "time_zone": "UTC",
     "budgeting": "occurrences",
     "sli": {"kind": "ratio", "bad": "http_requests_total{code=~\\"5..\\"}",
             "total": "http_requests_total"},
     "min_events": 100, "page": true, "ticket": true,
     "escalation_policy": "default", "runbook": "slo-burn-rate", "labels": {}}

`apply()` is the one way a document becomes a row: the model's clean(), then every
query checked against the source (`validation.verify`), exactly as the admin checks
an SLO. Errors name the document's fields ("sli.total", "objective").
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError

from controlplane.catalog.models import MetricSource, Organization, Service
from controlplane.jobs.models import JobMonitor
from controlplane.paging.models import EscalationPolicy
from controlplane.promql.durations import format_duration, parse_duration
from controlplane.slo.models import SLO
from controlplane.slo.objectives import target_of
from runbooks.models import Runbook

# Document key -> model field, for the keys that are not the same.
SLI_FIELDS = {
    "ratio": ("good", "bad", "total"),
    "latency": ("metric", "selector", "threshold"),
    "threshold": ("expr", "op", "threshold"),
}
# RPO and RTO (objectives.py): read from job runs and alerts, so no source and no query.
#   {"kind": "rpo", "job": "nightly-backup", "target": "24h"}
#   {"kind": "rto", "job": "restore-drill" or null, "services": ["api"], "target": "4h"}
OBJECTIVE_SLI_FIELDS = {"rpo": ("job", "target"), "rto": ("job", "services", "target")}
TOP_LEVEL = (
    "slug",
    "name",
    "description",
    "service",
    "source",
    "sli",
    "objective",
    "window",
    "time_zone",
    "budgeting",
    "slice_length",
    "slice_target",
    "min_events",
    "page",
    "ticket",
    "escalation_policy",
    "runbook",
    "labels",
    "enabled",
)
# What a document leaves out takes these values (unless a partial update keeps the
# current ones).
DEFAULTS: dict[str, Any] = {
    "description": "",
    "service": None,
    "window": "30d",
    "time_zone": "UTC",
    "budgeting": "occurrences",
    "slice_length": "5m",
    "slice_target": None,
    "min_events": 0,
    "page": True,
    "ticket": True,
    "escalation_policy": None,
    "runbook": None,
    "labels": {},
    "enabled": True,
}
# Model field -> where the document holds it, for error messages.
ERROR_NAMES = {
    "good": "sli.good",
    "bad": "sli.bad",
    "total": "sli.total",
    "metric": "sli.metric",
    "selector": "sli.selector",
    "expr": "sli.expr",
    "op": "sli.op",
    "threshold": "sli.threshold",
    "kind": "sli.kind",
    "job": "sli.job",
    "incident_services": "sli.services",
    "recovery_target": "sli.target",
    "__all__": "non_field_errors",
}


def to_document(slo: SLO) -> dict[str, Any]:
    """The SLO as its document (the inverse of `apply`)."""
    sli: dict[str, Any] = {"kind": slo.kind}
    if slo.kind in OBJECTIVE_SLI_FIELDS:
        sli["job"] = slo.job.slug if slo.job_id else None
        if slo.kind == "rto":
            sli["services"] = list(slo.incident_services or [])
        sli["target"] = format_duration(target_of(slo))
    for field in SLI_FIELDS.get(slo.kind, ()):
        value = getattr(slo, field)
        if field in ("good", "bad") and not value:
            continue
        sli[field] = value
    return {
        "slug": slo.slug,
        "name": slo.name,
        "description": slo.description,
        "service": slo.service.slug if slo.service_id else None,
        "source": slo.source.name if slo.source_id else None,
        "sli": sli,
        "objective": slo.objective,
        "window": slo.window,
        "time_zone": slo.time_zone,
        "budgeting": slo.budgeting,
        "slice_length": format_duration(slo.slice_length),
        "slice_target": slo.slice_target,
        "min_events": slo.min_events,
        "page": slo.page,
        "ticket": slo.ticket,
        "escalation_policy": slo.escalation_policy.slug if slo.escalation_policy_id else None,
        "runbook": slo.runbook.slug if slo.runbook_id else None,
        "labels": dict(slo.labels or {}),
        "enabled": slo.enabled,
    }


def apply(
    organization: Organization,
    document: Mapping[str, Any],
    *,
    current: SLO | None = None,
    partial: bool = False,
    verify_source: bool = True,
) -> SLO:
    """An unsaved SLO holding the document, checked as the admin checks it.

    `current` is the SLO being replaced (PUT) or patched (`partial`: what the
    document leaves out keeps its value). Raises ValidationError keyed by the
    document's own field names; nothing is saved here.
    """
    from controlplane.slo.validation import verify

    if not isinstance(document, Mapping):
        raise ValidationError({"non_field_errors": ["An SLO document is a JSON object."]})
    unknown = sorted(str(key) for key in document if key not in TOP_LEVEL)
    if unknown:
        raise ValidationError(
            {key: [f"Unknown field (known: {', '.join(TOP_LEVEL)})."] for key in unknown}
        )
    slo = SLO.objects.filter(pk=current.pk).first() if current is not None else SLO()
    if slo is None:
        raise ValidationError({"non_field_errors": ["The SLO was deleted meanwhile."]})
    slo.organization = organization
    values: dict[str, Any] = {} if partial else dict(DEFAULTS)
    values.update(document)
    errors: dict[str, list[str]] = {}
    for key in ("slug", "name", "objective", "sli"):
        if key not in values and not partial:
            errors[key] = ["This field is required."]
    objective = isinstance(values.get("sli"), Mapping) and (
        values["sli"].get("kind") in OBJECTIVE_SLI_FIELDS
    )
    if objective and not partial and "budgeting" not in document:
        # What an RPO or RTO can only be, rather than a refusal of the default.
        values["budgeting"] = "timeslices" if values["sli"]["kind"] == "rpo" else "occurrences"
    if not partial and "source" not in values and not objective:
        errors["source"] = ["This field is required: the name of a Prometheus source."]
    if errors:
        raise ValidationError(errors)

    for key, value in values.items():
        try:
            _set(slo, organization, key, value)
        except ValidationError as error:
            errors.setdefault(key, []).extend(error.messages)
    if errors:
        raise ValidationError(errors)
    if current is not None and slo.slug != current.slug:
        errors["slug"] = ["The slug names the SLO: it cannot change."]
    elif current is None and SLO.objects.filter(organization=organization, slug=slo.slug).exists():
        errors["slug"] = [f"An SLO with the slug {slo.slug!r} already exists."]
    if errors:
        raise ValidationError(errors)
    try:
        slo.full_clean(exclude=["organization"], validate_unique=False)
        if verify_source:
            verify(slo)
    except ValidationError as error:
        raise ValidationError(document_errors(error)) from None
    return slo


def document_errors(error: ValidationError) -> dict[str, list[str]]:
    """A model ValidationError keyed by the document's field names."""
    if not hasattr(error, "error_dict"):
        return {"non_field_errors": error.messages}
    return {
        ERROR_NAMES.get(field, field): messages for field, messages in error.message_dict.items()
    }


def _set(slo: SLO, organization: Organization, key: str, value: Any) -> None:
    if key == "sli":
        _set_sli(slo, value, organization)
    elif key in ("service", "source", "escalation_policy", "runbook"):
        setattr(slo, key, _related(organization, key, value))
    elif key == "slice_length":
        if not isinstance(value, str):
            raise ValidationError('A duration such as "5m".')
        try:
            slo.slice_length = parse_duration(value.strip())
        except ValueError as error:
            raise ValidationError(str(error).capitalize() + ".") from None
    elif key in ("objective", "slice_target"):
        if value is None and key == "slice_target":
            slo.slice_target = None
            return
        setattr(slo, key, _number(value))
    elif key == "min_events":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValidationError("A whole number of events, 0 or more.")
        slo.min_events = value
    elif key in ("page", "ticket", "enabled"):
        if not isinstance(value, bool):
            raise ValidationError("true or false.")
        setattr(slo, key, value)
    elif key == "labels":
        slo.labels = value
    elif key in ("window", "budgeting"):
        choices = SLO.Window.values if key == "window" else SLO.Budgeting.values
        if value not in choices:
            raise ValidationError(f"One of {', '.join(choices)}.")
        setattr(slo, key, value)
    else:  # slug, name, description, time_zone
        if not isinstance(value, str):
            raise ValidationError("Text.")
        setattr(slo, key, value.strip() if key != "description" else value)


def _set_sli(slo: SLO, sli: Any, organization: Organization) -> None:
    kinds = ", ".join([*SLI_FIELDS, *OBJECTIVE_SLI_FIELDS])
    if not isinstance(sli, Mapping) or sli.get("kind") not in (*SLI_FIELDS, *OBJECTIVE_SLI_FIELDS):
        raise ValidationError(f'An object with "kind" one of {kinds}.')
    kind = sli["kind"]
    # Whichever kind it is, the other family's fields are cleared: the row says one thing.
    slo.job, slo.incident_services, slo.recovery_target = None, [], None
    if kind in OBJECTIVE_SLI_FIELDS:
        _set_objective(slo, sli, organization)
        return
    allowed = {"kind", *SLI_FIELDS[kind]}
    unknown = sorted(str(key) for key in sli if key not in allowed)
    if unknown:
        raise ValidationError(
            f"A {kind} SLI has no {', '.join(unknown)} (it takes {', '.join(sorted(allowed))})."
        )
    slo.kind = kind
    for field in ("good", "bad", "total", "metric", "selector", "expr", "op"):
        value = sli.get(field, "") if field in SLI_FIELDS[kind] else ""
        if not isinstance(value, str):
            raise ValidationError(f"{field} is text.")
        setattr(slo, field, value.strip())
    slo.threshold = _number(sli["threshold"]) if "threshold" in sli else None


def _set_objective(slo: SLO, sli: Mapping[str, Any], organization: Organization) -> None:
    kind = sli["kind"]
    unknown = sorted(str(key) for key in sli if key not in {"kind", *OBJECTIVE_SLI_FIELDS[kind]})
    if unknown:
        allowed = ", ".join(sorted({"kind", *OBJECTIVE_SLI_FIELDS[kind]}))
        raise ValidationError(f"An {kind} SLI has no {', '.join(unknown)} (it takes {allowed}).")
    slo.kind = kind
    for field in ("good", "bad", "total", "metric", "selector", "expr", "op"):
        setattr(slo, field, "")
    slo.threshold = None
    job = sli.get("job")
    if job is not None:
        if not isinstance(job, str):
            raise ValidationError("job is the slug of a job monitor, or null.")
        slo.job = JobMonitor.objects.filter(organization=organization, slug=job).first()
        if slo.job is None:
            raise ValidationError(f"Unknown job monitor {job!r} in this organisation.")
    services = sli.get("services", [])
    if not isinstance(services, list) or not all(isinstance(s, str) for s in services):
        raise ValidationError('services is a list of service slugs, e.g. ["api"].')
    slo.incident_services = services
    target = sli.get("target")
    if target is not None:
        if not isinstance(target, str):
            raise ValidationError('target is a duration such as "24h".')
        try:
            slo.recovery_target = parse_duration(target.strip())
        except ValueError as error:
            raise ValidationError(f"target: {error}.") from None


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError("A number.")
    try:
        number = float(value)
    except OverflowError:  # a 400-digit JSON integer
        raise ValidationError("A finite number.") from None
    if not math.isfinite(number):
        raise ValidationError("A finite number.")
    return number


def _related(organization: Organization, key: str, name: Any):
    if name in (None, ""):
        return None
    if not isinstance(name, str):
        raise ValidationError("A name (text) or null.")
    if key == "service":
        found = Service.objects.filter(organization=organization, slug=name).first()
    elif key == "source":
        found = MetricSource.objects.filter(organization=organization, name=name).first()
    elif key == "escalation_policy":
        found = EscalationPolicy.objects.filter(organization=organization, slug=name).first()
    else:
        found = (
            Runbook.objects.filter(organization=organization, slug=name).first()
            or Runbook.objects.filter(organization__isnull=True, slug=name).first()
        )
    if found is None:
        raise ValidationError(f"Unknown {key.replace('_', ' ')} {name!r} in this organisation.")
    return found


def same(slo: SLO, other: SLO) -> bool:
    """Whether saving `slo` over `other` would change what a manager edits."""
    return to_document(slo) == to_document(other) and slo.bucket_le == other.bucket_le
