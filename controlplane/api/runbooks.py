"""Runbooks, read-only: shared ones and the caller's organisation's.

They are written through the admin and sync_runbooks, where history is kept.
"""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers

from controlplane.api.access import readable_organizations
from controlplane.api.scoping import OrganizationScopedViewSet
from observability import context
from runbooks import search, visibility
from runbooks.models import Runbook


class RunbookSerializer(serializers.ModelSerializer):
    organization = serializers.SlugRelatedField(
        slug_field="slug", read_only=True, allow_null=True, help_text="Null for shared runbooks."
    )
    html = serializers.SerializerMethodField(help_text="The body rendered and sanitised.")
    url = serializers.SerializerMethodField(help_text="The runbook page.")

    class Meta:
        model = Runbook
        fields = [
            "slug",
            "title",
            "summary",
            "tags",
            "owner",
            "organization",
            "body",
            "html",
            "url",
            "reviewed_at",
            "updated_at",
        ]

    def get_html(self, runbook: Runbook) -> str:
        return runbook.html

    def get_url(self, runbook: Runbook) -> str:
        return self.context["request"].build_absolute_uri(runbook.get_absolute_url())


FILTERS = [
    OpenApiParameter("q", OpenApiTypes.STR, description="Words in title, summary, tags or body."),
    OpenApiParameter("tag", OpenApiTypes.STR, description="Only runbooks with this tag."),
]


@extend_schema_view(list=extend_schema(parameters=FILTERS))
class RunbookViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrganizationScopedViewSet):
    """Runbooks: shared ones, and the organisation's own, which replace a shared one of
    the same slug."""

    queryset = Runbook.objects.select_related("organization").order_by("slug", "organization_id")
    serializer_class = RunbookSerializer
    lookup_field = "slug"
    lookup_value_regex = "[^/]+"
    shared_rows = True

    def _preferred(self) -> set[int]:
        return readable_organizations(self.request) or set()

    def get_queryset(self):
        queryset = visibility.without_overridden(super().get_queryset(), self._preferred())
        if self.action == "list":
            query = self.request.query_params.get("q", "").strip()[:200]
            tag = self.request.query_params.get("tag", "").strip()
            if query:
                queryset = search.matching(queryset, query)
            if tag:
                queryset = search.tagged(queryset, tag)
        return queryset

    def get_object(self):
        candidates = self.get_queryset().filter(slug=self.kwargs["slug"])
        runbook = visibility.choose(candidates, self._preferred())
        if runbook is None:
            raise Http404("No Runbook matches the given query.")
        self.check_object_permissions(self.request, runbook)
        if runbook.organization_id is not None:
            context.bind(organization_id=str(runbook.organization_id))
        return runbook
