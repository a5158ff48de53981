"""The audit trail in the admin: read-only, for managers of the organisation.

Nobody adds, changes or deletes an event here, superusers included; a POST to the add,
change or delete page is refused (403) and the attempt itself recorded. A page of the
list costs the same few queries for 5 events as for 100: the actors, the organisations
and which objects still exist are read once for the page (`TrailChangeList`), not per row.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode

from django.apps import apps
from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.urls import get_resolver, reverse
from django.utils.html import format_html
from django.utils.text import capfirst

from controlplane.audit import history, reading
from controlplane.audit.audited import audited_models
from controlplane.audit.models import AuditEvent, Pseudonym
from controlplane.catalog import tenancy
from controlplane.catalog.actors import KINDS
from controlplane.catalog.admin import OrganizationScopedAdmin, ReadOnlyRows
from controlplane.catalog.models import ApiToken, Organization
from controlplane.trace_links import trace_link

# The most people, and tokens, the actor filter lists by name; the others are reached
# from the actor column's link, or by kind.
MOST_LISTED = 50
ACTOR_KINDS = {
    "user": "people",
    "token": "API tokens",
    "system": "system tasks",
    "link": "one-click links",
}


def forbidden(request: HttpRequest, why: str) -> HttpResponse:
    """The site's 403 page, returned rather than raised: what the view recorded stays."""
    handler = get_resolver().resolve_error_handler(403)
    return handler(request, exception=PermissionDenied(why))


# --- filters ----------------------------------------------------------------------------


class ActorFilter(admin.SimpleListFilter):
    """By kind of actor, by person (username) or token; any stored spec from a link."""

    title = "actor"
    parameter_name = "actor"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        allowed = reading.trail_organizations(request.user)
        people = Pseudonym.objects.order_by("user__username")
        tokens = ApiToken.objects.order_by("organization_id", "name", "pk")
        if allowed is not None:
            people = people.filter(user__memberships__organization_id__in=allowed)
            tokens = tokens.filter(organization_id__in=allowed)
        named = people.values_list("value", "user__username").distinct()[:MOST_LISTED]
        choices = list(ACTOR_KINDS.items())
        choices += [(f"user:{value}", username) for value, username in named]
        choices += [
            (f"token:{pk}", f"API token {name!r} (#{pk})" if name else f"API token #{pk}")
            for pk, name in tokens.values_list("pk", "name")[:MOST_LISTED]
        ]
        return choices

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if not value:
            return queryset
        if value in KINDS:
            return queryset.filter(actor__startswith=f"{value}:")
        return queryset.filter(actor=value)


class ActionFilter(admin.SimpleListFilter):
    title = "action"
    parameter_name = "action"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        actions = (
            model_admin.get_queryset(request)
            .order_by("action")
            .values_list("action", flat=True)
            .distinct()
        )
        return [(action, action) for action in actions]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        return queryset.filter(action=value) if value else queryset


def object_types() -> list[tuple[str, str]]:
    """What the trail records events of: configuration, and what the admin shows."""
    models = {*audited_models(), *admin.site._registry}
    return sorted(
        ((model._meta.label_lower, capfirst(model._meta.verbose_name)) for model in models),
        key=lambda choice: (choice[1].lower(), choice[0]),
    )


class ObjectTypeFilter(admin.SimpleListFilter):
    title = "object type"
    parameter_name = "object_type"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return object_types()

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        return queryset.filter(object_type=value) if value else queryset


# --- a page of the list, read at once ------------------------------------------------------


def _existing(object_type: str, ids: set[str]) -> set[str]:
    """Which of the ids still name an object with an admin page (one query)."""
    try:
        model = apps.get_model(object_type)
    except (LookupError, ValueError):
        return set()
    if model not in admin.site._registry:
        return set()
    pk = model._meta.pk
    wanted = []
    for raw in ids:
        try:
            wanted.append(pk.to_python(raw))
        except (ValidationError, ValueError, TypeError):
            continue
    if not wanted:
        return set()
    found = model._base_manager.filter(pk__in=wanted).values_list("pk", flat=True)
    return {str(value) for value in found}


def annotate(events: Iterable[AuditEvent]) -> None:
    """Give each event of a page what its row shows: its actor in words, its
    organisation's slug, and its object's admin page while the object exists."""
    events = list(events)
    names = reading.actor_names(event.actor for event in events)
    org_ids = {event.organization_id for event in events if event.organization_id}
    slugs = dict(Organization.objects.filter(pk__in=org_ids).values_list("pk", "slug"))
    wanted: dict[str, set[str]] = defaultdict(set)
    for event in events:
        if event.object_id:
            wanted[event.object_type].add(event.object_id)
    existing = {kind: _existing(kind, ids) for kind, ids in wanted.items()}
    for event in events:
        event.actor_text = names.get(event.actor, event.actor)
        event.organization_slug = slugs.get(event.organization_id, "")
        found = event.object_id in existing.get(event.object_type, ())
        event.object_url = (
            history.object_admin_url(event.object_type, event.object_id) if found else ""
        )


class TrailChangeList(ChangeList):
    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        self.result_list = list(self.result_list)
        annotate(self.result_list)


def _object_words(event: AuditEvent) -> str:
    try:
        kind = capfirst(apps.get_model(event.object_type)._meta.verbose_name)
    except (LookupError, ValueError):
        kind = event.object_type
    shown = event.object_label or (f"#{event.object_id}" if event.object_id else "")
    return f"{kind} {shown}".strip()


# --- the admin ---------------------------------------------------------------------------


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyRows, OrganizationScopedAdmin):
    """Managers read their organisations' trail; superusers every chain's."""

    read_roles = tenancy.MANAGE_ROLES
    list_display = ["at", "actor_shown", "action", "object_shown", "request_id", "trace"]
    list_filter = [
        ActorFilter,
        ActionFilter,
        ObjectTypeFilter,
        ("at", admin.DateFieldListFilter),
    ]
    search_fields = ["object_label", "=object_id", "=request_id", "=trace_id"]
    # Sorting by anything but time would sort the whole trail.
    sortable_by = ["at"]
    list_per_page = 50
    # Counting the whole trail beside the filtered one is a second scan for a number.
    show_full_result_count = False
    actions = None
    fieldsets = [
        (
            None,
            {"fields": ["at", "actor_shown", "action", "object_shown", "request_id", "trace"]},
        ),
        ("Changes", {"fields": ["changes"]}),
        (
            "Chain",
            {
                "fields": ["organization_shown", "chain", "seq", "prev_hash", "hash", "mac"],
                "description": "Each event's hash covers the event before it: "
                "manage.py audit_verify walks the chain.",
            },
        ),
    ]
    readonly_fields = [
        "at",
        "actor_shown",
        "action",
        "object_shown",
        "request_id",
        "trace",
        "changes",
        "organization_shown",
        "chain",
        "seq",
        "prev_hash",
        "hash",
        "mac",
    ]

    def _organization_id(self, obj: AuditEvent) -> int | None:
        # By id: the organisation may be gone, its trail is not.
        return obj.organization_id

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return TrailChangeList

    def get_list_display(self, request: HttpRequest) -> list[str]:
        shown = list(super().get_list_display(request))
        if self._sees_several_organizations(request):
            shown.insert(1, "organization_shown")
        return shown

    def _read(self, event: AuditEvent) -> AuditEvent:
        if not hasattr(event, "actor_text"):  # the detail page: one event, read alone
            annotate([event])
        return event

    @admin.display(description="actor")
    def actor_shown(self, event: AuditEvent) -> str:
        self._read(event)
        # Everything this actor did, from the list as from an event's page.
        url = reverse("admin:audit_auditevent_changelist") + "?" + urlencode({"actor": event.actor})
        return format_html('<a href="{}" title="{}">{}</a>', url, event.actor, event.actor_text)

    @admin.display(description="object")
    def object_shown(self, event: AuditEvent) -> str:
        self._read(event)
        words = _object_words(event)
        if event.object_url:
            return format_html('<a href="{}">{}</a>', event.object_url, words)
        return words

    @admin.display(description="organisation")
    def organization_shown(self, event: AuditEvent) -> str:
        self._read(event)
        if event.organization_id is None:
            return "- (none: chain 0)"
        return event.organization_slug or f"#{event.organization_id} (deleted)"

    @admin.display(description="trace")
    def trace(self, event: AuditEvent) -> str:
        return trace_link(event.trace_id)

    @admin.display(description="changes")
    def changes(self, event: AuditEvent) -> str:
        return render_to_string("admin/audit/diff.html", {"rows": reading.diff_rows(event.diff)})

    # --- nobody edits the trail -----------------------------------------------------------

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context=None):
        if request.method == "POST":
            reading.record_attempt("added")
            return forbidden(request, "Audit events are written by the control plane only.")
        return super().add_view(request, form_url, extra_context)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context=None
    ):
        if request.method == "POST":
            reading.record_attempt(
                "changed", object_id, lambda org: reading.may_read(request.user, org)
            )
            return forbidden(request, "Audit events cannot be changed.")
        return super().change_view(request, object_id, form_url, extra_context)

    def delete_view(self, request: HttpRequest, object_id: str, extra_context=None):
        if request.method == "POST":
            reading.record_attempt(
                "deleted", object_id, lambda org: reading.may_read(request.user, org)
            )
            return forbidden(request, "Audit events cannot be deleted.")
        return super().delete_view(request, object_id, extra_context)

    def changelist_view(self, request: HttpRequest, extra_context=None):
        extra_context = dict(extra_context or {})
        object_type = request.GET.get("object_type")
        object_id = request.GET.get("object_id")
        if object_type and object_id:
            # Arrived from an object's "History" link.
            try:
                kind = apps.get_model(object_type)._meta.verbose_name
            except (LookupError, ValueError):
                kind = object_type
            extra_context["title"] = f"History of {kind} #{object_id}"
            extra_context["history_of_url"] = history.object_admin_url(object_type, object_id)
        return super().changelist_view(request, extra_context)
