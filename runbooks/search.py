"""Search and tag filters shared by the pages and the API."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from runbooks.content import is_slug

MAX_TERMS = 8


def terms(query: str) -> list[str]:
    return query.split()[:MAX_TERMS]


def matching(queryset: QuerySet, query: str) -> QuerySet:
    """Runbooks containing every word of the query in the title, summary, tags or body."""
    for term in terms(query):
        queryset = queryset.filter(
            Q(title__icontains=term)
            | Q(summary__icontains=term)
            | Q(tags__icontains=term)
            | Q(body__icontains=term)
            | Q(slug__icontains=term)
        )
    return queryset


def tagged(queryset: QuerySet, tag: str) -> QuerySet:
    """Runbooks carrying the tag.

    Tags are a JSON list. JSON containment is not available on SQLite, so this matches
    the quoted tag in the list's JSON text; the tag is checked to be a slug first, so it
    can hold no quote of its own and '"api"' never matches "api-latency".
    """
    if not is_slug(tag):
        return queryset.none()
    return queryset.filter(tags__icontains=f'"{tag}"')


def all_tags(rows) -> list[str]:
    return sorted({tag for tags in rows for tag in tags})
