from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.db import models
from django.http import HttpRequest

from controlplane.audit import erasure, policy
from controlplane.audit.models import RetentionOverride
from controlplane.catalog import tenancy
from controlplane.catalog.models import (
    ApiToken,
    Membership,
    MetricSource,
    Organization,
    Service,
    SourceHealth,
)

SHARED = "shared"


class OrganizationFilter(admin.SimpleListFilter):
    """The organisations the user may read, and no other.

    Django's own filter for the organisation field would list every organisation in
    the system, walls or not.
    """

    title = "organisation"
    parameter_name = "organization"

    def __init__(self, request, params, model, model_admin) -> None:
        self.field = model_admin.organization_field
        self.shared = model_admin.shared_rows
        super().__init__(request, params, model, model_admin)

    def lookups(self, request, model_admin) -> list[tuple[str, str]]:
        readable = tenancy.organizations(request.user, model_admin.read_roles)
        choices = [(str(org.pk), org.name) for org in readable]
        if self.shared:
            choices.append((SHARED, "shared by every organisation"))
        return choices

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        if value not in {choice for choice, _ in self.lookup_choices}:
            return queryset.none()
        if value == SHARED:
            return queryset.filter(**{f"{self.field}__isnull": True})
        return queryset.filter(**{self.field: int(value)})


def _labelled_with_organization(obj) -> str:
    owner = obj.organization.slug if obj.organization_id else SHARED
    return f"{obj} ({owner})"


class OrganizationScopedAdmin(admin.ModelAdmin):
    """Staff see their organisations' rows; managers change them; superusers see all.

    Every admin of an organisation-owned model derives from this class. Rows with
    no organisation (shared, e.g. built-in runbooks) are read-only but to superusers.
    """

    organization_field = "organization"
    shared_rows = False
    # Who sees the rows: a subclass may narrow it, e.g. to managers.
    read_roles = tenancy.READ_ROLES

    def _organization_id(self, obj) -> int | None:
        target = obj
        for part in self.organization_field.split("__"):
            target = getattr(target, part, None)
        return getattr(target, "pk", None)

    def get_queryset(self, request: HttpRequest):
        queryset = super().get_queryset(request)
        allowed = tenancy.organization_ids(request.user, self.read_roles)
        # Shared rows are for members of some organisation, as on the pages and the API:
        # a staff account of none sees nothing.
        shared = self.shared_rows and (allowed is None or bool(allowed))
        return tenancy.scope(queryset, allowed, self.organization_field, shared=shared)

    def has_module_permission(self, request: HttpRequest) -> bool:
        allowed = tenancy.organization_ids(request.user, self.read_roles)
        return request.user.is_staff and (allowed is None or bool(allowed))

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        if obj is None:
            return self.has_module_permission(request)
        org_id = self._organization_id(obj)
        if org_id is None and self.shared_rows:
            return self.has_module_permission(request)
        return request.user.is_staff and tenancy.has_role(request.user, org_id, self.read_roles)

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

    def _sees_several_organizations(self, request: HttpRequest) -> bool:
        allowed = tenancy.organization_ids(request.user, self.read_roles)
        return allowed is None or len(allowed) > 1

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        related = db_field.related_model
        labelled = False
        if related is Organization:
            kwargs["queryset"] = tenancy.organizations(request.user, tenancy.MANAGE_ROLES)
        elif any(f.name == "organization" for f in related._meta.fields):
            shared = related._meta.get_field("organization").null
            kwargs["queryset"] = tenancy.scope(
                related._default_manager.select_related("organization"),
                tenancy.organization_ids(request.user),
                shared=shared,
            )
            labelled = self._sees_several_organizations(request)
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if labelled and field is not None:
            # Two organisations may both have a source called "prom": say whose is whose.
            field.label_from_instance = _labelled_with_organization
        return field

    def get_list_filter(self, request):
        filters = list(super().get_list_filter(request))
        if self._sees_several_organizations(request) and OrganizationFilter not in filters:
            filters.insert(0, OrganizationFilter)
        return filters


class ReadOnlyRows:
    """For rows that change only through their context's recorder (alerts, timeline
    events): the admin shows them and offers actions, never an edit form."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ReadOnlyInline(ReadOnlyRows, admin.TabularInline):
    """History shown inside an object's change page (a timeline, revisions).

    Its parent's admin has already checked the organisation wall, and history is
    never edited by hand.
    """

    extra = 0
    can_delete = False

    def has_view_permission(self, request, obj=None) -> bool:
        return True


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


def _retention_help() -> str:
    bounds = ", ".join(
        f"{name.replace('_', ' ')} {least} to {most:,}"
        for name, (least, most) in ((name, policy.bounds(name)) for name in policy.CATEGORIES)
    )
    defaults = ", ".join(
        f"{name.replace('_', ' ')} {days}"
        for name, days in policy.defaults(settings.RETENTION_DAYS).items()
    )
    return f"Days kept. Bounds: {bounds}. Without an override: {defaults}."


class RetentionOverrideInline(admin.TabularInline):
    """How long this organisation keeps each category (controlplane/audit/policy.py),
    set by its managers; a value out of bounds is refused with the reason."""

    model = RetentionOverride
    extra = 0
    fields = ["category", "days"]

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name == "days":
            field.help_text = _retention_help()
        return field

    def _manages(self, request, obj) -> bool:
        return (
            obj is not None
            and request.user.is_staff
            and tenancy.has_role(request.user, obj.pk, tenancy.MANAGE_ROLES)
        )

    def has_view_permission(self, request, obj=None) -> bool:
        return (
            obj is not None
            and request.user.is_staff
            and tenancy.has_role(request.user, obj.pk, tenancy.READ_ROLES)
        )

    def has_add_permission(self, request, obj=None) -> bool:
        return self._manages(request, obj)

    def has_change_permission(self, request, obj=None) -> bool:
        return self._manages(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return self._manages(request, obj)


@admin.register(Organization)
class OrganizationAdmin(OrganizationScopedAdmin):
    organization_field = "pk"
    list_display = ["slug", "name", "created_at"]
    search_fields = ["slug", "name"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline, RetentionOverrideInline]

    def _organization_id(self, obj) -> int | None:
        return obj.pk

    def get_queryset(self, request):
        return tenancy.organizations(request.user)

    def get_inlines(self, request, obj):
        # Membership edits pick users from the user list, which only superusers see.
        if request.user.is_superuser:
            return self.inlines
        return [inline for inline in self.inlines if inline is not MembershipInline]

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
        # Typed (or cleared) in this save: it may go wherever the URL now points.
        self.instance.auth_header_given = True
        return value


@admin.register(MetricSource)
class MetricSourceAdmin(OrganizationScopedAdmin):
    form = MetricSourceForm
    list_display = ["name", "organization", "kind", "url", "timeout", "auth", "health"]
    list_filter = ["kind"]
    search_fields = ["name", "url"]
    list_select_related = ["organization", "health"]
    readonly_fields = ["stored_auth_header", "health"]

    def get_fields(self, request, obj=None) -> list[str]:
        fields = ["organization", "name", "kind", "url", "timeout"]
        if obj is not None and not self.has_change_permission(request, obj):
            # A read-only page shows every field's stored value: the header would be
            # there in clear. Viewers get the masked value instead.
            return [*fields, "auth", "health"]
        if obj is None:
            return [*fields, "auth_header"]
        return [*fields, "stored_auth_header", "auth_header", "clear_auth_header", "health"]

    @admin.display(description="health")
    def health(self, obj: MetricSource) -> str:
        # The evaluator's row (SourceHealth): shown, never part of the form.
        try:
            health = obj.health
        except SourceHealth.DoesNotExist:
            return "not queried yet"
        if health.failing_since:
            return f"failing since {health.failing_since:%Y-%m-%d %H:%M:%S %Z}: {health.last_error}"
        if health.last_success_at:
            return f"answered at {health.last_success_at:%Y-%m-%d %H:%M:%S %Z}"
        return "not queried yet"

    @admin.display(description="auth header")
    def auth(self, obj: MetricSource) -> str:
        return obj.masked_auth_header or "—"

    def lookup_allowed(self, lookup: str, value, request=None) -> bool:
        # The admin filters on any local field from the URL: a filter on the header
        # would reveal it one guessed prefix at a time.
        if lookup.split("__")[0] == "auth_header":
            return False
        return super().lookup_allowed(lookup, value, request)

    @admin.display(description="stored auth header")
    def stored_auth_header(self, obj: MetricSource) -> str:
        return obj.masked_auth_header or "— (none)"


class MembershipForm(forms.ModelForm):
    """Members are named by username: a manager never picks from the list of all users."""

    username = forms.CharField(max_length=150, help_text="The username of an existing account.")

    class Meta:
        model = Membership
        fields = ["organization", "role"]

    def clean_username(self) -> str:
        username = self.cleaned_data["username"].strip()
        user_model = get_user_model()
        user = user_model._default_manager.filter(**{user_model.USERNAME_FIELD: username}).first()
        if user is None:
            raise forms.ValidationError(f"There is no account with the username {username!r}.")
        self.instance.user = user
        return username

    def clean(self) -> dict:
        cleaned = super().clean()
        organization = cleaned.get("organization")
        # The (organisation, user) constraint is not checked by the form: user is not
        # one of its fields.
        if organization is not None and self.instance.user_id is not None:
            taken = Membership.objects.filter(
                organization=organization, user_id=self.instance.user_id
            ).exclude(pk=self.instance.pk)
            if taken.exists():
                self.add_error(
                    "username",
                    f"{cleaned['username']} is already a member of {organization.name}.",
                )
        return cleaned


@admin.register(Membership)
class MembershipAdmin(OrganizationScopedAdmin):
    """Managers add members by username, change their roles and remove them.

    Unlike other rows of an organisation, memberships are shown to its managers only:
    who has access is not for every viewer to browse.
    """

    form = MembershipForm
    fields = ["organization", "username", "role"]
    list_display = ["username", "organization", "role"]
    list_filter = ["role"]
    list_select_related = ["user", "organization"]
    search_fields = ["user__username"]
    ordering = ["organization__slug", "user__username"]
    read_roles = tenancy.MANAGE_ROLES

    def get_readonly_fields(self, request, obj=None) -> list[str]:
        # A membership is one user in one organisation: changing it means its role.
        return ["organization", "username"] if obj is not None else []

    @admin.display(description="user", ordering="user__username")
    def username(self, membership: Membership) -> str:
        return membership.user.get_username()


class ApiTokenForm(forms.ModelForm):
    class Meta:
        model = ApiToken
        fields = ["organization", "name", "scope"]


@admin.register(ApiToken)
class ApiTokenAdmin(OrganizationScopedAdmin):
    """Managers issue and revoke tokens. Like memberships, the list of what can reach
    the organisation (a token's prefix, name and scope) is theirs alone to browse."""

    form = ApiTokenForm
    read_roles = tenancy.MANAGE_ROLES
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


# People: Django's user admin, with erasure (docs/audit.md) for superusers only.
_User = get_user_model()
if admin.site.is_registered(_User):
    _UserAdmin = type(admin.site.get_model_admin(_User))
    admin.site.unregister(_User)
else:
    from django.contrib.auth.admin import UserAdmin as _UserAdmin


@admin.register(_User)
class PersonAdmin(_UserAdmin):
    actions = [erasure.erase_personal_data]

    def has_erase_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.is_superuser
