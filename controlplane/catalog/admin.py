from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db import models
from django.http import HttpRequest

from controlplane.catalog import tenancy
from controlplane.catalog.models import (
    ApiToken,
    Membership,
    MetricSource,
    Organization,
    Service,
)


class OrganizationScopedAdmin(admin.ModelAdmin):
    """Staff see their organisations' rows; managers change them; superusers see all.

    Every admin of an organisation-owned model derives from this class. Rows with
    no organisation (shared, e.g. built-in runbooks) are read-only but to superusers.
    """

    organization_field = "organization"
    shared_rows = False

    def _organization_id(self, obj) -> int | None:
        target = obj
        for part in self.organization_field.split("__"):
            target = getattr(target, part, None)
        return getattr(target, "pk", None)

    def get_queryset(self, request: HttpRequest):
        queryset = super().get_queryset(request)
        allowed = tenancy.organization_ids(request.user)
        return tenancy.scope(queryset, allowed, self.organization_field, shared=self.shared_rows)

    def has_module_permission(self, request: HttpRequest) -> bool:
        allowed = tenancy.organization_ids(request.user)
        return request.user.is_staff and (allowed is None or bool(allowed))

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        if obj is None:
            return self.has_module_permission(request)
        org_id = self._organization_id(obj)
        if org_id is None and self.shared_rows:
            return request.user.is_staff
        return request.user.is_staff and tenancy.has_role(request.user, org_id, tenancy.READ_ROLES)

    def has_add_permission(self, request: HttpRequest) -> bool:
        managed = tenancy.organization_ids(request.user, tenancy.MANAGE_ROLES)
        return request.user.is_staff and (managed is None or bool(managed))

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        if obj is None:
            return self.has_add_permission(request)
        org_id = self._organization_id(obj)
        if org_id is None:
            return request.user.is_superuser
        return request.user.is_staff and tenancy.has_role(
            request.user, org_id, tenancy.MANAGE_ROLES
        )

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return self.has_change_permission(request, obj)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        related = db_field.related_model
        if related is Organization:
            kwargs["queryset"] = tenancy.organizations(request.user, tenancy.MANAGE_ROLES)
        elif any(f.name == "organization" for f in related._meta.fields):
            shared = related._meta.get_field("organization").null
            kwargs["queryset"] = tenancy.scope(
                related._default_manager.all(),
                tenancy.organization_ids(request.user),
                shared=shared,
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_list_filter(self, request):
        filters = list(super().get_list_filter(request))
        allowed = tenancy.organization_ids(request.user)
        if (allowed is None or len(allowed) > 1) and self.organization_field not in filters:
            filters.insert(0, self.organization_field)
        return filters


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Organization)
class OrganizationAdmin(OrganizationScopedAdmin):
    organization_field = "pk"
    list_display = ["slug", "name", "created_at"]
    search_fields = ["slug", "name"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]

    def _organization_id(self, obj) -> int | None:
        return obj.pk

    def get_queryset(self, request):
        return tenancy.organizations(request.user)

    def get_inlines(self, request, obj):
        # Membership edits pick users from the user list, which only superusers see.
        return self.inlines if request.user.is_superuser else []

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser

    def get_list_filter(self, request):
        return []


@admin.register(Service)
class ServiceAdmin(OrganizationScopedAdmin):
    list_display = ["name", "slug", "organization", "tier", "team", "updated_at"]
    list_filter = ["tier", "team"]
    search_fields = ["name", "slug", "team", "description"]
    prepopulated_fields = {"slug": ["name"]}


class MetricSourceForm(forms.ModelForm):
    auth_header = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Sent as the Authorization header. Leave blank to keep the current one; "
        "tick 'clear' to remove it.",
    )
    clear_auth_header = forms.BooleanField(required=False, label="Clear the auth header")

    class Meta:
        model = MetricSource
        fields = ["organization", "name", "kind", "url", "timeout", "auth_header"]

    def clean_auth_header(self) -> str:
        value = self.cleaned_data.get("auth_header", "")
        if not value and self.instance.pk and not self.data.get("clear_auth_header"):
            return self.instance.auth_header
        return value


@admin.register(MetricSource)
class MetricSourceAdmin(OrganizationScopedAdmin):
    form = MetricSourceForm
    list_display = ["name", "organization", "kind", "url", "timeout", "auth"]
    list_filter = ["kind"]
    search_fields = ["name", "url"]

    @admin.display(description="auth header")
    def auth(self, obj: MetricSource) -> str:
        return obj.masked_auth_header or "—"


class ApiTokenForm(forms.ModelForm):
    class Meta:
        model = ApiToken
        fields = ["organization", "name", "scope"]


@admin.register(ApiToken)
class ApiTokenAdmin(OrganizationScopedAdmin):
    form = ApiTokenForm
    list_display = [
        "prefix",
        "name",
        "organization",
        "scope",
        "created_at",
        "last_used_at",
        "status",
    ]
    list_filter = ["scope", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix"]
    readonly_fields = ["prefix", "created_by", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    @admin.display(description="status")
    def status(self, obj: ApiToken) -> str:
        return "active" if obj.is_active else "revoked"

    def get_readonly_fields(self, request, obj=None):
        if obj is not None:
            return [*self.readonly_fields, "organization", "scope"]
        return self.readonly_fields

    def save_model(self, request, obj: ApiToken, form, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        token, plaintext = ApiToken.issue(
            obj.organization, obj.scope, obj.name, created_by=request.user
        )
        obj.pk, obj.prefix, obj.digest = token.pk, token.prefix, token.digest
        obj.created_by, obj.created_at = token.created_by, token.created_at
        messages.warning(
            request,
            f"Your new token is {plaintext} — copy it now: it is stored hashed and "
            "will not be shown again.",
        )

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset: models.QuerySet) -> None:
        allowed = tenancy.organization_ids(request.user, tenancy.MANAGE_ROLES)
        revoked = 0
        for token in tenancy.scope(queryset, allowed):
            if token.is_active:
                token.revoke()
                revoked += 1
        self.message_user(request, f"{revoked} token(s) revoked.")
