"""The alert pages: what is on fire now, and one alert with its timeline."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Case, IntegerField, QuerySet, Value, When
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from controlplane.alerting import lifecycle
from controlplane.alerting.models import Alert, AlertEvent, Severity
from controlplane.catalog import actors, tenancy
from controlplane.catalog.actors import Actor
from controlplane.catalog.models import Organization, Service
from controlplane.catalog.validators import NUL
from controlplane.paging import incident

# The list shows every open alert (up to a page) and the recently resolved ones.
OPEN_LIMIT = 200
RESOLVED_LIMIT = 50
RESOLVED_WITHIN = timedelta(days=7)
# Matches the API's limit on a note.
NOTE_MAX_LENGTH = 1000

_OPEN_FIRST = Case(
    When(state=Alert.State.FIRING, then=Value(0)),
    When(state=Alert.State.ACKNOWLEDGED, then=Value(1)),
    default=Value(2),
    output_field=IntegerField(),
)


def _visible(request: HttpRequest) -> QuerySet:
    return tenancy.scope(Alert.objects.all(), tenancy.organization_ids(request.user))


def _filters(request: HttpRequest) -> dict[str, str]:
    wanted = {
        name: request.GET.get(name, "").strip() for name in ("state", "severity", "service", "rule")
    }
    if wanted["state"] not in Alert.State.values:
        wanted["state"] = ""
    if wanted["severity"] not in Severity.values:
        wanted["severity"] = ""
    return wanted


def _organization_named(request: HttpRequest) -> Organization | None:
    """The organisation ?organization=<slug> narrows the list to, among the reader's."""
    wanted = request.GET.get("organization", "").strip()
    if not wanted:
        return None
    organization = tenancy.organizations(request.user).filter(slug=wanted).first()
    if organization is None:
        # Another organisation's slug is not found either: its existence does not leak.
        raise Http404("No such organisation.")
    return organization


@login_required
def index(request: HttpRequest) -> HttpResponse:
    filters = _filters(request)
    organization = _organization_named(request)
    alerts = _visible(request).select_related("service", "organization")
    if organization is not None:
        alerts = alerts.filter(organization=organization)
    if filters["severity"]:
        alerts = alerts.filter(severity=filters["severity"])
    if filters["service"]:
        alerts = alerts.filter(service__slug=filters["service"])
    if filters["rule"]:
        alerts = alerts.filter(rule_key=filters["rule"])
    alerts = alerts.annotate(rank=_OPEN_FIRST).order_by("rank", "-started_at")

    if filters["state"] == Alert.State.RESOLVED:
        shown = list(alerts.filter(state=Alert.State.RESOLVED)[:RESOLVED_LIMIT])
    elif filters["state"]:
        shown = list(alerts.filter(state=filters["state"])[:OPEN_LIMIT])
    else:
        recent = timezone.now() - RESOLVED_WITHIN
        shown = list(alerts.exclude(state=Alert.State.RESOLVED)[:OPEN_LIMIT])
        shown += list(
            alerts.filter(state=Alert.State.RESOLVED, resolved_at__gte=recent)[:RESOLVED_LIMIT]
        )

    allowed = tenancy.organization_ids(request.user) if organization is None else {organization.pk}
    services = (
        tenancy.scope(Service.objects.all(), allowed)
        .order_by("slug")
        .values_list("slug", flat=True)
        .distinct()
    )
    context = {
        "alerts": shown,
        "filters": filters,
        "filtered": any(filters.values()) or organization is not None,
        "organization": organization,
        "states": Alert.State.choices,
        "severities": Severity.choices,
        "services": list(services),
    }
    return render(request, "alerts/list.html", context)


def _alert_or_404(request: HttpRequest, pk: int) -> Alert:
    alert = (
        _visible(request)
        .select_related(
            "organization",
            "service",
            "rule__runbook",
            "acknowledged_by",
            "silenced_by",
            "alertmanager",
            "slo",
        )
        .filter(pk=pk)
        .first()
    )
    if alert is None:
        # Another organisation's alert is not found either: its id does not leak.
        raise Http404("No such alert.")
    return alert


def _timeline(alert: Alert) -> list[AlertEvent]:
    """The alert's events, each with an `actor_label`; at most two queries name them all."""
    events = list(alert.events.all())
    names = actors.labels(event.actor for event in events)
    for event in events:
        event.actor_label = names[event.actor]
    return events


def _acknowledger(timeline: list[AlertEvent]) -> str:
    """Who acknowledged, for an acknowledger that is no user (a token, a one-click link)."""
    acknowledged = [e for e in timeline if e.kind == AlertEvent.Kind.ACKNOWLEDGED]
    return acknowledged[-1].actor_label if acknowledged else ""


@login_required
def detail(request: HttpRequest, pk: int) -> HttpResponse:
    alert = _alert_or_404(request, pk)
    runbook = alert.rule.runbook if alert.rule_id else None
    timeline = _timeline(alert)
    context = {
        "alert": alert,
        "timeline": timeline,
        "acknowledger": _acknowledger(timeline),
        "runbook": runbook,
        # An alert from Alertmanager links the runbook its payload named (checked as an
        # http(s) address or our runbook's page when it came in).
        "runbook_link": "" if runbook is not None else alert.runbook_url,
        "trace_url": alert.trace_url(),
        "can_respond": tenancy.has_role(request.user, alert.organization_id, tenancy.RESPOND_ROLES),
        "note_max_length": NOTE_MAX_LENGTH,
        "paging": incident.paging_of(alert),
    }
    return render(request, "alerts/detail.html", context)


def _responding(request: HttpRequest, pk: int) -> Alert:
    alert = _alert_or_404(request, pk)
    if not tenancy.has_role(request.user, alert.organization_id, tenancy.RESPOND_ROLES):
        raise PermissionDenied("Only responders and managers of its organisation may do this.")
    return alert


def _note(request: HttpRequest) -> str | None:
    """The note typed with an action; None when it cannot be stored (it holds a NUL)."""
    note = request.POST.get("note", "").strip()[:NOTE_MAX_LENGTH]
    if NUL in note:
        messages.error(request, "The note contains a NUL character; nothing was changed.")
        return None
    return note


@require_POST
@login_required
def acknowledge(request: HttpRequest, pk: int) -> HttpResponse:
    alert = _responding(request, pk)
    note = _note(request)
    if note is None:
        return redirect(alert)
    if lifecycle.acknowledge(alert, Actor.user(request.user), note=note):
        messages.success(request, "Acknowledged.")
    else:
        messages.info(request, f"Nothing to acknowledge: the alert is {alert.state}.")
    return redirect(alert)


@require_POST
@login_required
def resolve(request: HttpRequest, pk: int) -> HttpResponse:
    alert = _responding(request, pk)
    note = _note(request)
    if note is None:
        return redirect(alert)
    if lifecycle.resolve(alert, actor=Actor.user(request.user), note=note or "resolved by hand"):
        messages.success(request, "Resolved.")
    else:
        messages.info(request, "The alert was already resolved.")
    return redirect(alert)


@require_POST
@login_required
def reapply(request: HttpRequest, pk: int) -> HttpResponse:
    """Switch the alert's escalation to its policy's current version."""
    alert = _responding(request, pk)
    try:
        done = incident.reapply_current(alert, Actor.user(request.user))
    except incident.CannotReapply as refused:
        messages.info(request, f"Nothing re-applied. {refused}")
    else:
        messages.success(
            request,
            f"Now on version {done.current} of the policy (was {done.previous}); "
            f"{done.written} notification(s) of the new version due at once.",
        )
    return redirect(alert)
