"""The overview page at `/`, and the fragment of it its script fetches to refresh.

`/?fragment=1` answers the sections alone (the same organisation walls, the same
queries): static/js/overview.js swaps them in every `REFRESH_SECONDS`, so the page
stays current without a reload, and without the script it is a plain page.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache

from controlplane.catalog import tenancy
from controlplane.overview import reading

# Organisations shown at once (a superuser reads every one); the others are a link away.
ORGANIZATIONS_SHOWN = 10
# Organisations the picker names at most.
PICKER_LIMIT = 200
# How often the script refreshes the sections; tests shorten it (the page carries it).
REFRESH_SECONDS = 30


@never_cache
@login_required
def home(request: HttpRequest) -> HttpResponse:
    readable = tenancy.organizations(request.user).order_by("name", "slug")
    allowed = tenancy.organization_ids(request.user)
    several = allowed is None or len(allowed) > 1
    wanted = request.GET.get("organization", "").strip()
    fragment = request.GET.get("fragment") == "1"
    picker = list(readable.only("pk", "slug", "name")[: PICKER_LIMIT + 1])
    status = 200
    if wanted:
        chosen = [org for org in picker if org.slug == wanted] or list(
            readable.filter(slug=wanted)[:1]
        )
        # Another organisation's slug is not found either: its existence does not leak.
        status = 200 if chosen else 404
    else:
        chosen = picker[:ORGANIZATIONS_SHOWN]
    # The picker stops at its limit; past it (a superuser of many), one count says how many.
    readable_count = len(picker) if len(picker) <= PICKER_LIMIT else readable.count()
    now = timezone.now()
    overviews = reading.read(chosen, several, now)
    query = {"fragment": "1", **({"organization": wanted} if wanted else {})}
    context = {
        "overviews": overviews,
        "summary": reading.summary(overviews),
        "now": now,
        "several": several,
        "wanted": wanted,
        "unknown": wanted if status == 404 else "",
        "picker": picker[:PICKER_LIMIT],
        "picker_more": len(picker) > PICKER_LIMIT,
        "hidden": max(0, readable_count - len(chosen)) if not wanted else 0,
        "first": reading.FIRST,
        "dead_days": reading.DEAD_WITHIN.days,
        "refresh_seconds": REFRESH_SECONDS,
        "fragment_url": f"{request.path}?{urlencode(query)}",
    }
    template = "overview/_sections.html" if fragment else "overview/page.html"
    return render(request, template, context, status=status)
