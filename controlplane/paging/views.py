"""The pages of a signed one-click link (paging/links.py): the link is the credential,
so they need no sign-in.

A GET only shows what the link would do, and asks for a POST (with its CSRF token):
mail scanners and chat previews fetch every link of a message, and must not
acknowledge anything. The POST acts through alerting's lifecycle as the link's
`recipient`: the person its notification was addressed to (an on-call responder's own
email), else the channel it reached; the timeline's details and the audit trail's diff
name the notification. Every refusal is a page of its own, changing nothing, and says
nothing of the alert unless the link is ours and for it:

| the link | status |
| --- | --- |
| not ours (altered, cut short) or of another alert | 400 |
| ours, for this alert, expired | 410 |
| of a notification or alert since deleted | 404 |
| asks for what is done already (acknowledged, resolved) | 409 |
"""

from __future__ import annotations

import logging
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from controlplane.alerting import lifecycle
from controlplane.alerting.models import Alert, AlertEvent
from controlplane.catalog import actors
from controlplane.catalog.actors import Actor
from controlplane.paging import links
from controlplane.paging.links import Action, Link, LinkRefused, Refusal
from controlplane.paging.models import Notification

logger = logging.getLogger(__name__)

TEMPLATE = "paging/respond.html"

VERBS = {Action.ACKNOWLEDGE: "Acknowledge", Action.RESOLVE: "Resolve"}


@never_cache
@require_http_methods(["GET", "POST"])
def respond(request: HttpRequest, pk: int, token: str) -> HttpResponse:
    try:
        link = links.read(token, pk, timezone.now())
    except LinkRefused as refused:
        logger.info("one-click link for alert %s refused: %s", pk, refused.refusal)
        return _refused(request, pk, refused.refusal)
    notification = (
        Notification.objects.select_related("alert__rule", "alert__organization", "responder__user")
        .filter(pk=link.notification_id, alert_id=pk)
        .first()
    )
    if notification is None:
        return _page(request, 404, "This alert is gone", "The alert was deleted.")
    alert = notification.alert
    if request.method == "POST":
        return _act(request, link, notification, alert)
    if not _open_for(alert, link.action):
        return _done_already(request, alert)
    return _page(
        request,
        200,
        f"{VERBS[link.action]} this alert?",
        "",
        alert=alert,
        form=_form(link),
        channel=notification.channel_name,
        expires_at=link.expires_at,
    )


def _open_for(alert: Alert, action: Action) -> bool:
    if action == Action.ACKNOWLEDGE:
        return alert.state == Alert.State.FIRING
    return alert.state != Alert.State.RESOLVED


def _act(
    request: HttpRequest, link: Link, notification: Notification, alert: Alert
) -> HttpResponse:
    actor = recipient(notification)
    how = {"via": "one-click link", "notification": notification.pk}
    if link.action == Action.ACKNOWLEDGE:
        if not lifecycle.acknowledge(alert, actor, details=how):
            return _done_already(request, alert)
        return _page(
            request,
            200,
            "Acknowledged",
            "Nobody else is paged for this alert now; the timeline names "
            f"{actor.label} as its acknowledger.",
            alert=alert,
            form=_form(link.to(Action.RESOLVE)),
        )
    if not lifecycle.resolve(alert, actor=actor, note="resolved by hand", details=how):
        return _done_already(request, alert)
    return _page(
        request,
        200,
        "Resolved",
        "The alert is resolved; those paged for it are told so as its policy says.",
        alert=alert,
    )


def recipient(notification: Notification) -> Actor:
    """Whom a link acts as: the person its notification was addressed to (an email to
    an on-call responder alone, paging/responders.py), who then acknowledges in their
    own name; else whoever reads the channel it reached (a shared Slack channel, a
    mailing list, a webhook), `Actor.link` naming the notification and the channel."""
    responder = notification.responder
    if responder is not None:
        return Actor.user(responder.user)
    # A responder's row ("<schedule>: <username>") whose responder is gone names the
    # schedule alone: the actor is stored in the trail, which names nobody by name.
    # A channel's name is a slug, with no ':' to cut at.
    return Actor.link(notification.pk, notification.channel_name.partition(":")[0])


def _form(link: Link) -> dict[str, str]:
    path = reverse("paging:respond", args=[link.alert_id, links.issue(link)])
    return {"action": path, "verb": VERBS[link.action]}


def _done_already(request: HttpRequest, alert: Alert) -> HttpResponse:
    alert.refresh_from_db(fields=["state", "acknowledged_at", "resolved_at"])
    if alert.state == Alert.State.RESOLVED:
        message = f"It was resolved at {_when(alert.resolved_at)}."
    else:
        by = _acknowledger(alert)
        message = f"It was acknowledged at {_when(alert.acknowledged_at)} by {by}."
    return _page(request, 409, "Nothing to do", message, alert=alert)


def _acknowledger(alert: Alert) -> str:
    spec = (
        alert.events.filter(kind=AlertEvent.Kind.ACKNOWLEDGED)
        .order_by("-at", "-pk")
        .values_list("actor", flat=True)
        .first()
    )
    return actors.labels([spec])[spec] if spec else "someone"


def _when(at) -> str:
    return f"{timezone.localtime(at):%d %b %Y %H:%M:%S %Z}" if at else "an unknown time"


def _refused(request: HttpRequest, pk: int, refusal: Refusal) -> HttpResponse:
    if refusal == Refusal.EXPIRED:
        return _page(
            request,
            410,
            "This link has expired",
            f"One-click links work for {links.LIFETIME.total_seconds() / 3600:g} hours after "
            "they are sent. Sign in to respond from the alert page, or use the link of a "
            "later notification.",
            sign_in_to=pk,
        )
    # Tampered or of another alert: the same words, as neither says anything of an alert.
    return _page(
        request,
        400,
        "This link is not valid",
        "It was changed or cut short on its way (copy the whole address), or it belongs "
        "to another alert. Nothing was done.",
    )


def _page(
    request: HttpRequest,
    status: int,
    heading: str,
    message: str,
    sign_in_to: int | None = None,
    **context: Any,
) -> HttpResponse:
    """The page, linking to the alert's own page (which asks to sign in) when the link
    was ours and for that alert."""
    alert = context.get("alert")
    if alert is not None:
        sign_in_to = alert.pk
    if sign_in_to is not None:
        context["alert_path"] = reverse("alerts:detail", args=[sign_in_to])
    context.update(heading=heading, message=message)
    response = render(request, TEMPLATE, context, status=status)
    # The token is a credential: the page is not for search engines, nor its address
    # for other sites (the site's policy already sends no referrer elsewhere).
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response
