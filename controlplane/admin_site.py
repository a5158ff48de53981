"""The admin site: Django's, with two views that keep to the organisation walls.

Every ModelAdmin of an organisation-owned model scopes its own queryset
(controlplane.catalog.admin.OrganizationScopedAdmin), but two views of the site
itself reach rows without asking any ModelAdmin:

- the "view on site" shortcut, /admin/r/<content type>/<id>/, which redirects to
  the object's page for any object that exists, telling a staff user of one
  organisation which ids another has and where its runbooks live;
- the autocomplete endpoint, which answers 500 when asked about a reverse relation.

It also gives every ModelAdmin registered on it the audit trail as its history, and
feeds the index's "Recent actions" from the trail (controlplane/audit/history.py).
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.views.autocomplete import AutocompleteJsonView
from django.contrib.contenttypes import views as contenttype_views
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import FieldDoesNotExist, PermissionDenied, ValidationError
from django.db import models
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import URLPattern, path

NOT_FOUND = "No such object, or not one of your organisations'."


def visible_in_admin(site: admin.AdminSite, request: HttpRequest, model, object_id: str) -> bool:
    """Whether the object's change page would show it to this user.

    The same two walls the change page uses: the row is in its ModelAdmin's queryset
    (scoped to the user's organisations) and the user may view it. Models with no
    ModelAdmin are for superusers only.
    """
    model_admin = site._registry.get(model)
    if model_admin is None:
        return request.user.is_active and request.user.is_superuser
    try:
        obj = model_admin.get_queryset(request).filter(pk=object_id).first()
    except (ValueError, ValidationError):  # an id no row of this model could have
        return False
    return obj is not None and model_admin.has_view_or_change_permission(request, obj)


def is_forward_relation(app_label: str, model_name: str, field_name: str) -> bool:
    """A ForeignKey or ManyToManyField declared on the model: what autocomplete serves.

    Django's view finds the field with _meta.get_field(), which also returns reverse
    relations (ManyToOneRel, ManyToManyRel). They pass its checks, having a
    remote_field too, then fail at get_limit_choices_to(): an AttributeError, a 500
    for a request any staff user can forge.
    """
    from django.apps import apps

    try:
        field = apps.get_model(app_label, model_name)._meta.get_field(field_name)
    except (LookupError, ValueError, FieldDoesNotExist):
        return False
    return (
        isinstance(field, models.Field)
        and field.remote_field is not None
        and hasattr(field, "get_limit_choices_to")
    )


class ForwardRelationAutocomplete(AutocompleteJsonView):
    def process_request(self, request: HttpRequest):
        params = [request.GET.get(key, "") for key in ("app_label", "model_name", "field_name")]
        # Django answers PermissionDenied (403) for every other malformed request.
        if not is_forward_relation(*params):
            raise PermissionDenied
        return super().process_request(request)


class ControlPlaneAdminSite(admin.AdminSite):
    def register(self, model_or_iterable, admin_class=None, **options) -> None:
        # Every ModelAdmin's "History" is the object's audit trail, and none writes
        # Django's LogEntry (controlplane/audit/history.py): given here, none is left out.
        from controlplane.audit.history import with_trail

        admin_class = with_trail(admin_class or admin.ModelAdmin)
        super().register(model_or_iterable, admin_class, **options)

    def index(self, request: HttpRequest, extra_context=None) -> HttpResponse:
        from controlplane.audit.history import recent_events

        # "Recent actions" from the audit trail (templates/admin/index.html).
        extra_context = {**(extra_context or {}), "recent_events": recent_events(request)}
        return super().index(request, extra_context)

    def autocomplete_view(self, request: HttpRequest) -> HttpResponse:
        return ForwardRelationAutocomplete.as_view(admin_site=self)(request)

    def view_on_site(
        self, request: HttpRequest, content_type_id: int, object_id: str
    ) -> HttpResponse:
        try:
            model = ContentType.objects.get_for_id(content_type_id).model_class()
        except ContentType.DoesNotExist:
            model = None
        # One answer for "no such object" and "another organisation's": the 404 must
        # not tell the two apart.
        if model is None or not visible_in_admin(self, request, model, object_id):
            raise Http404(NOT_FOUND)
        return contenttype_views.shortcut(request, content_type_id, object_id)

    def get_urls(self) -> list:
        urls = super().get_urls()
        ours = path(
            "r/<int:content_type_id>/<path:object_id>/",
            self.admin_view(self.view_on_site),
            name="view_on_site",
        )
        return [
            ours if isinstance(url, URLPattern) and url.name == "view_on_site" else url
            for url in urls
        ]
