"""Runbook pages: the list with search and tags, a runbook, and its history."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from runbooks import links, search, visibility
from runbooks.models import Runbook, RunbookRevision

# The list shows titles and summaries; the bodies stay in the database.
LIST_FIELDS = [
    "slug",
    "title",
    "summary",
    "tags",
    "owner",
    "reviewed_at",
    "updated_at",
    "organization__name",
    "organization__slug",
]


@login_required
def index(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()[:200]
    tag = request.GET.get("tag", "").strip()[:64]
    visible = visibility.visible_to(request.user)

    runbooks = visible.select_related("organization").only(*LIST_FIELDS)
    if query:
        runbooks = search.matching(runbooks, query)
    if tag:
        runbooks = search.tagged(runbooks, tag)

    context = {
        "runbooks": list(runbooks.order_by("title", "slug")),
        "tags": search.all_tags(visible.values_list("tags", flat=True)),
        "q": query,
        "tag": tag,
    }
    return render(request, "runbooks/list.html", context)


def _not_found(request: HttpRequest, slug: str) -> HttpResponse:
    context = {"slug": slug, "q": slug.replace("-", " ")}
    return render(request, "runbooks/not_found.html", context, status=404)


@login_required
def page(request: HttpRequest, slug: str) -> HttpResponse:
    queryset = Runbook.objects.select_related("organization", "updated_by")
    runbook = visibility.resolve(request.user, slug, queryset)
    if runbook is None:
        # Another organisation's runbook is not found either: its slug does not leak.
        return _not_found(request, slug)
    context = {
        "runbook": runbook,
        "linked_from": links.links_to(runbook, request.user),
        "revision_count": runbook.revisions.count(),
    }
    return render(request, "runbooks/page.html", context)


@login_required
def revisions(request: HttpRequest, slug: str) -> HttpResponse:
    runbook = visibility.resolve(request.user, slug)
    if runbook is None:
        return _not_found(request, slug)
    history = runbook.revisions.select_related("changed_by").defer("body")
    return render(request, "runbooks/revisions.html", {"runbook": runbook, "revisions": history})


@login_required
def revision(request: HttpRequest, slug: str, revision_id: int) -> HttpResponse:
    visible = visibility.visible_to(request.user).filter(slug=slug)
    found = (
        RunbookRevision.objects.select_related("runbook__organization", "changed_by")
        .filter(pk=revision_id, runbook__in=visible)
        .first()
    )
    if found is None:
        raise Http404("No such version of this runbook.")
    return render(request, "runbooks/revision.html", {"revision": found, "runbook": found.runbook})
