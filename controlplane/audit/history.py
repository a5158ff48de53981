"""Each object's history in the admin is its audit trail; Django's LogEntry is not written.

The admin site (controlplane/admin_site.py) gives every ModelAdmin registered on it the
`TrailHistory` mixin (`with_trail`), so no admin can be added without it:

- the "History" link of an object's page opens the audit events of that object (the
  AuditEvent list filtered by object type and id), for those who may read its
  organisation's trail (reading.may_read), and is hidden from the others;
- `log_addition`/`log_change`/`log_deletions`, Django's LogEntry writes, are replaced:
  configuration models (audit.Audited) record their own changes with a diff in the
  transaction of the save; the others edited in the admin (accounts, groups, beat's
  schedules, the login throttle's rows) are recorded here, in the same transaction,
  naming the fields changed. LogEntry would have kept usernames and labels of people
  beside the trail, out of reach of erasure and of the chain.
- the admin index's "Recent actions" box, which read LogEntry, shows the latest events of
  the organisations the user manages instead (`recent_events`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.db import models, router, transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import NoReverseMatch, reverse

from controlplane.audit import pseudonyms, reading
from controlplane.audit.audited import Audited
from controlplane.audit.models import AuditEvent

RECENT = 10  # events in the index's "Recent actions" box
# Models whose str() names a person or an address: labelled by id (or pseudonym) only.
UNNAMED = frozenset({"axes.accessattempt", "axes.accesslog", "axes.accessfailurelog"})


def history_url(model: type[models.Model], object_id: Any) -> str:
    """The AuditEvent list of one object's events."""
    changelist = reverse("admin:audit_auditevent_changelist")
    query = {"object_type": model._meta.label_lower, "object_id": str(object_id)}
    return f"{changelist}?{urlencode(query)}"


def organization_of(model_admin: Any, obj: models.Model) -> int | None:
    """The organisation whose trail holds the object's events; None: chain 0."""
    if isinstance(obj, Audited):
        return obj.audit_organization_id()
    if hasattr(model_admin, "_organization_id"):  # catalog.admin.OrganizationScopedAdmin
        return model_admin._organization_id(obj)
    return None


def label_of(obj: models.Model) -> str:
    """What the trail calls an object edited in the admin: never a person's name."""
    if isinstance(obj, Audited):
        return obj.audit_label()
    opts = obj._meta
    if opts.label_lower == settings.AUTH_USER_MODEL.lower():
        return f"user {pseudonyms.of_user_id(obj.pk) or pseudonyms.ERASED}"
    if opts.label_lower in UNNAMED:
        return f"{opts.verbose_name} #{obj.pk}"
    return str(obj)


def fields_changed(message: Any) -> dict[str, dict[str, bool]]:
    """The fields an admin change message names (their labels, never their values)."""
    if not isinstance(message, list):
        return {}
    diff: dict[str, dict[str, bool]] = {}
    for part in message:
        changed = part.get("changed") if isinstance(part, dict) else None
        # Inline rows are left out: their str() may name a person, and those that are
        # configuration record themselves.
        if isinstance(changed, dict) and "name" not in changed:
            for name in changed.get("fields", []):
                diff[str(name)] = {"changed": True}
    return diff


class TrailHistory:
    """Mixed into every ModelAdmin of the site: see the module's docstring."""

    def may_read_history(self, request: HttpRequest, obj: models.Model) -> bool:
        return reading.may_read(request.user, organization_of(self, obj))

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: dict | None = None
    ) -> HttpResponse:
        # The same walls, in the same order, as Django's history page: the object must be
        # one the user sees, then one whose trail they may read.
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_view_or_change_permission(request, obj):
            raise PermissionDenied
        if not self.may_read_history(request, obj):
            raise PermissionDenied
        return HttpResponseRedirect(history_url(self.model, obj.pk))

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict,
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: models.Model | None = None,
    ) -> HttpResponse:
        # templates/admin/change_form_object_tools.html hides the link it would refuse.
        context["history_hidden"] = obj is None or not self.may_read_history(request, obj)
        return super().render_change_form(request, context, add, change, form_url, obj)

    # --- instead of LogEntry ------------------------------------------------------------

    def _record(self, obj: models.Model, action: str, message: Any = None) -> None:
        if isinstance(obj, Audited):
            return  # recorded by its save or its deletion, with the diff
        from controlplane.audit.recorder import object_type_of, record

        record(
            action,
            organization_id=organization_of(self, obj),
            object_type=object_type_of(type(obj)),
            object_id=obj.pk,
            label=label_of(obj),
            diff=fields_changed(message),
        )

    def log_addition(self, request: HttpRequest, obj: models.Model, message: Any) -> None:
        self._record(obj, "created", message)

    def log_change(self, request: HttpRequest, obj: models.Model, message: Any) -> None:
        self._record(obj, "updated", message)

    def log_deletions(self, request: HttpRequest, queryset: Any) -> None:
        """Nothing here: the deletion itself records (delete_model, delete_queryset)."""

    def delete_model(self, request: HttpRequest, obj: models.Model) -> None:
        with transaction.atomic(using=router.db_for_write(type(obj))):
            self._record(obj, "deleted")
            super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: models.QuerySet) -> None:
        with transaction.atomic(using=queryset.db):
            if not issubclass(queryset.model, Audited):
                for obj in queryset:
                    self._record(obj, "deleted")
            super().delete_queryset(request, queryset)


def with_trail(admin_class: type[admin.ModelAdmin]) -> type[admin.ModelAdmin]:
    """The ModelAdmin class with TrailHistory first in its bases (once)."""
    if issubclass(admin_class, TrailHistory):
        return admin_class
    namespace = {"__module__": admin_class.__module__, "__doc__": admin_class.__doc__}
    return type(admin_class.__name__, (TrailHistory, admin_class), namespace)


# --- the admin index ----------------------------------------------------------------------


def recent_events(request: HttpRequest) -> list[dict[str, Any]] | None:
    """The latest events of the organisations the user manages, for the admin index;
    None for those who read no trail (the box is left out)."""
    user = request.user
    allowed = reading.trail_organizations(user)
    if allowed is not None and not allowed:
        return None
    queryset = reading.scoped(AuditEvent.objects.all(), allowed)
    # A superuser's latest of all: by id, the primary key's index, not a sort of the table.
    order = ("-id",) if allowed is None else ("-at", "-id")
    events = list(queryset.order_by(*order)[:RECENT])
    names = reading.actor_names(event.actor for event in events)
    return [
        {
            "event": event,
            "url": reverse("admin:audit_auditevent_change", args=[quote(event.pk)]),
            "actor": names.get(event.actor, event.actor),
        }
        for event in events
    ]


def object_admin_url(object_type: str, object_id: str) -> str:
    """The object's admin page as a URL, or "" (no admin, no id); not checked to exist."""
    from django.apps import apps

    if not object_id:
        return ""
    try:
        model = apps.get_model(object_type)
    except (LookupError, ValueError):
        return ""
    if model not in admin.site._registry:
        return ""
    try:
        return reverse(
            f"admin:{model._meta.app_label}_{model._meta.model_name}_change",
            args=[quote(object_id)],
        )
    except NoReverseMatch:
        return ""
