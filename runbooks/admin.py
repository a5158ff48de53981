from __future__ import annotations

from django import forms
from django.contrib import admin
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from controlplane.catalog.admin import OrganizationScopedAdmin, ReadOnlyInline
from runbooks.content import normalize_body
from runbooks.models import Runbook, RunbookRevision, Via
from runbooks.search import all_tags, tagged


class MarkdownField(forms.CharField):
    """Textareas post CRLF; normalising here keeps an untouched body 'unchanged'."""

    def to_python(self, value):
        return normalize_body(super().to_python(value))


class TagsField(forms.CharField):
    """The JSON list of tags, edited as 'api, latency'."""

    def prepare_value(self, value):
        if isinstance(value, list | tuple):
            return ", ".join(value)
        return value

    def to_python(self, value) -> list[str]:
        if isinstance(value, list):
            return value
        words = (value or "").replace(",", " ").split()
        return list(dict.fromkeys(word.strip().lower() for word in words))


class RunbookForm(forms.ModelForm):
    body = MarkdownField(
        widget=forms.Textarea(attrs={"rows": 30, "class": "vLargeTextField"}), strip=False
    )
    tags = TagsField(required=False, help_text="Comma-separated, e.g. api, latency.")

    class Meta:
        model = Runbook
        fields = [
            "organization",
            "slug",
            "title",
            "summary",
            "owner",
            "tags",
            "reviewed_at",
            "body",
        ]
        widgets = {"summary": forms.Textarea(attrs={"rows": 2, "class": "vLargeTextField"})}


class TagFilter(admin.SimpleListFilter):
    title = "tag"
    parameter_name = "tag"

    def lookups(self, request, model_admin):
        rows = model_admin.get_queryset(request).values_list("tags", flat=True)
        return [(tag, tag) for tag in all_tags(rows)]

    def queryset(self, request, queryset):
        return tagged(queryset, self.value()) if self.value() else queryset


class RevisionInline(ReadOnlyInline):
    model = RunbookRevision
    fields = ["changed_at", "changed_by", "via", "title", "version"]
    readonly_fields = fields
    ordering = ["-changed_at", "-pk"]
    show_change_link = False
    verbose_name_plural = "history"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("changed_by", "runbook")

    @admin.display(description="version")
    def version(self, revision: RunbookRevision) -> str:
        return format_html('<a href="{}">view this version</a>', revision.get_absolute_url())


@admin.register(Runbook)
class RunbookAdmin(OrganizationScopedAdmin):
    form = RunbookForm
    shared_rows = True
    list_display = [
        "title",
        "slug",
        "organization_or_shared",
        "owner",
        "tag_list",
        "reviewed_at",
        "updated_at",
        "updated_by",
    ]
    list_filter = [TagFilter, "owner", "reviewed_at"]
    list_select_related = ["organization", "updated_by"]
    search_fields = ["title", "slug", "summary", "tags", "body"]
    readonly_fields = ["preview", "updated_at", "updated_by", "source"]
    inlines = [RevisionInline]

    class Media:
        css = {"all": ["runbooks/admin.css"]}

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        if "organization" in form.base_fields and not request.user.is_superuser:
            # Shared runbooks are everyone's: only superusers make or change them.
            form.base_fields["organization"].required = True
        return form

    def get_fieldsets(self, request, obj=None):
        fields = [
            "organization",
            "slug",
            "title",
            "summary",
            "owner",
            "tags",
            "reviewed_at",
            "body",
        ]
        fieldsets = [(None, {"fields": fields})]
        if obj is not None:
            fieldsets.append(("Rendered page", {"fields": ["preview"]}))
            fieldsets.append(("Changes", {"fields": ["updated_at", "updated_by", "source"]}))
        return fieldsets

    @admin.display(description="organisation", ordering="organization__slug")
    def organization_or_shared(self, runbook: Runbook) -> str:
        return runbook.organization.name if runbook.organization else "shared"

    @admin.display(description="tags")
    def tag_list(self, runbook: Runbook) -> str:
        return ", ".join(runbook.tags)

    @admin.display(description="preview (as saved, after sanitising)")
    def preview(self, runbook: Runbook) -> str:
        # Safe to mark: this is the sanitiser's output, the same HTML the page shows.
        return format_html('<div class="runbook-preview">{}</div>', mark_safe(runbook.html))  # noqa: S308

    @admin.display(description="file")
    def source(self, runbook: Runbook) -> str:
        if not runbook.source_path:
            return "— (made in the admin)"
        return (
            f"{runbook.source_path}: an edit here is kept until that file changes; then "
            "sync_runbooks reports a conflict. Copy lasting edits into the file."
        )

    def save_model(self, request, obj: Runbook, form, change: bool) -> None:
        if change and not form.has_changed():
            return
        obj.save_change(changed_by=request.user, via=Via.ADMIN)
