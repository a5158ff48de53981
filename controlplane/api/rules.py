"""Alert rules as code, in Prometheus' own words: "for", "keep_firing_for", "5m".

A rule is checked exactly as the admin checks it: the model's clean(), then its
PromQL against its source. Services, sources and runbooks are named by slug and
found within the caller's organisation only.
"""

from __future__ import annotations

from datetime import timedelta

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_view
from rest_framework import serializers, viewsets
from rest_framework.exceptions import ValidationError

from controlplane.alerting.models import AlertRule, Severity
from controlplane.alerting.states import OPERATORS
from controlplane.alerting.validation import verify_expression
from controlplane.api.access import target_organization
from controlplane.api.bodies import StrictBody
from controlplane.api.errors import save_or_conflict
from controlplane.api.fields import RuleKeyField, SampleValueField
from controlplane.api.schema import ORGANIZATION, SAVED_CONCURRENTLY
from controlplane.api.scoping import OrganizationScopedViewSet
from controlplane.catalog.models import MetricSource, Organization, Service
from controlplane.paging.models import EscalationPolicy
from controlplane.promql.durations import format_duration, parse_duration
from runbooks.models import Runbook

# API name -> model field, where they differ.
FIELD_NAMES = {"for": "for_duration"}
MODEL_NAMES = {model: api for api, model in FIELD_NAMES.items()}

# What a PUT or a POST leaves out takes these values; a PATCH keeps the current ones.
DEFAULTS = {
    "service": None,
    "source": None,
    "severity": Severity.WARNING,
    "op": "",
    "threshold": None,
    "for_duration": timedelta(0),
    "keep_firing_for": timedelta(0),
    "interval": timedelta(minutes=1),
    "labels": {},
    "annotations": {},
    "runbook": None,
    "escalation_policy": None,
    "enabled": True,
}


@extend_schema_field({"type": "string", "example": "5m"})
class PrometheusDuration(serializers.Field):
    default_error_messages = {"invalid": "{message}."}

    def to_representation(self, value: timedelta) -> str:
        return format_duration(value)

    def to_internal_value(self, data) -> timedelta:
        try:
            return parse_duration(data.strip() if isinstance(data, str) else data)
        except ValueError as error:
            self.fail("invalid", message=str(error).capitalize())


class RuleSerializer(StrictBody, serializers.Serializer):
    key = RuleKeyField(max_length=100)
    name = serializers.CharField(max_length=200)
    service = serializers.CharField(required=False, allow_null=True, help_text="A service slug.")
    severity = serializers.ChoiceField(Severity.choices, required=False)
    source = serializers.CharField(
        required=False, allow_null=True, help_text="A source's name; null for an internal signal."
    )
    expr = serializers.CharField(help_text="PromQL, or the internal signal's name.")
    op = serializers.ChoiceField(["", *OPERATORS], required=False, allow_blank=True)
    threshold = SampleValueField(required=False, allow_null=True)
    keep_firing_for = PrometheusDuration(required=False)
    interval = PrometheusDuration(required=False)
    labels = serializers.JSONField(required=False)
    annotations = serializers.JSONField(required=False)
    runbook = serializers.CharField(required=False, allow_null=True, help_text="A runbook slug.")
    escalation_policy = serializers.CharField(
        required=False,
        allow_null=True,
        help_text="An escalation policy's slug; null: the organisation's default policy.",
    )
    enabled = serializers.BooleanField(required=False)
    builtin = serializers.BooleanField(read_only=True)
    # The evaluator's (RuleEvaluation): read here, never written by an edit.
    state = serializers.CharField(source="evaluation.state", read_only=True, default="inactive")
    last_value = SampleValueField(source="evaluation.last_value", read_only=True, default=None)
    last_error = serializers.CharField(source="evaluation.last_error", read_only=True, default="")
    last_evaluated_at = serializers.DateTimeField(
        source="evaluation.last_evaluated_at", read_only=True, default=None, allow_null=True
    )
    verification = serializers.CharField(read_only=True)
    verification_note = serializers.CharField(read_only=True)

    def get_fields(self):
        fields = super().get_fields()
        # "for" is a Python keyword, so it cannot be declared as an attribute.
        fields["for"] = PrometheusDuration(source="for_duration", required=False)
        return fields

    def to_representation(self, rule: AlertRule) -> dict:
        data = super().to_representation(rule)
        data["service"] = rule.service.slug if rule.service_id else None
        data["source"] = rule.source.name if rule.source_id else None
        data["runbook"] = rule.runbook.slug if rule.runbook_id else None
        data["escalation_policy"] = (
            rule.escalation_policy.slug if rule.escalation_policy_id else None
        )
        return data

    def validate(self, attrs: dict) -> dict:
        if self.instance is None:
            organization: Organization = self.context["organization"]
            rule = AlertRule(organization=organization)
        else:
            organization = self.instance.organization
            rule = AlertRule.objects.get(pk=self.instance.pk)
        values = {} if self.partial else dict(DEFAULTS)
        values.update(attrs)
        values.update(self._related(organization, attrs))
        for field, value in values.items():
            setattr(rule, field, value)
        self._check_key_is_free(rule)
        try:
            rule.full_clean(exclude=["organization"])
            verify_expression(rule)
        except DjangoValidationError as error:
            raise ValidationError(_api_errors(error)) from None
        return {"rule": rule}

    def _related(self, organization: Organization, attrs: dict) -> dict:
        found, errors = {}, {}
        lookups = {
            "service": lambda slug: Service.objects.filter(organization=organization, slug=slug),
            "source": lambda name: MetricSource.objects.filter(
                organization=organization, name=name
            ),
            "runbook": lambda slug: _runbooks(organization, slug),
            "escalation_policy": lambda slug: EscalationPolicy.objects.filter(
                organization=organization, slug=slug
            ),
        }
        for field, lookup in lookups.items():
            if field not in attrs:
                continue
            name = attrs[field]
            if name in (None, ""):
                found[field] = None
                continue
            obj = lookup(name).first() if isinstance(name, str) else None
            if obj is None:
                what = field.replace("_", " ")
                errors[field] = [f"Unknown {what} {name!r} in this organisation."]
            found[field] = obj
        if errors:
            raise ValidationError(errors)
        return found

    def _check_key_is_free(self, rule: AlertRule) -> None:
        taken = AlertRule.objects.filter(organization_id=rule.organization_id, key=rule.key)
        if rule.pk:
            taken = taken.exclude(pk=rule.pk)
        if taken.exists():
            raise ValidationError({"key": [f"A rule with the key {rule.key!r} already exists."]})

    def _save(self, rule: AlertRule) -> AlertRule:
        return save_or_conflict(rule, self._check_key_is_free, f"The rule {rule.key!r}")

    def create(self, validated_data: dict) -> AlertRule:
        return self._save(validated_data["rule"])

    def update(self, instance: AlertRule, validated_data: dict) -> AlertRule:
        return self._save(validated_data["rule"])


def _runbooks(organization: Organization, slug: str) -> list[Runbook]:
    """The organisation's own runbook of that slug first, then the shared one."""
    own = Runbook.objects.filter(organization=organization, slug=slug)
    shared = Runbook.objects.filter(organization__isnull=True, slug=slug)
    return own if own.exists() else shared


def _api_errors(error: DjangoValidationError) -> dict[str, list[str]]:
    if not hasattr(error, "error_dict"):
        return {"non_field_errors": error.messages}
    return {
        MODEL_NAMES.get(field, "non_field_errors" if field == "__all__" else field): messages
        for field, messages in error.message_dict.items()
    }


@extend_schema_view(
    create=extend_schema(
        parameters=[ORGANIZATION], responses={201: RuleSerializer, 409: SAVED_CONCURRENTLY}
    ),
    retrieve=extend_schema(parameters=[ORGANIZATION]),
    update=extend_schema(
        parameters=[ORGANIZATION], responses={200: RuleSerializer, 409: SAVED_CONCURRENTLY}
    ),
    partial_update=extend_schema(
        parameters=[ORGANIZATION], responses={200: RuleSerializer, 409: SAVED_CONCURRENTLY}
    ),
    destroy=extend_schema(parameters=[ORGANIZATION]),
)
class RuleViewSet(
    viewsets.mixins.ListModelMixin,
    viewsets.mixins.RetrieveModelMixin,
    viewsets.mixins.CreateModelMixin,
    viewsets.mixins.UpdateModelMixin,
    viewsets.mixins.DestroyModelMixin,
    OrganizationScopedViewSet,
):
    """Alert rules of the caller's organisation, by key. Writes need a write token."""

    queryset = AlertRule.objects.select_related(
        "organization", "service", "source", "runbook", "escalation_policy", "evaluation"
    ).order_by("organization_id", "key")
    serializer_class = RuleSerializer
    lookup_field = "key"
    lookup_value_regex = "[^/]+"

    def get_serializer_context(self) -> dict:
        extra = super().get_serializer_context()
        if self.action == "create":
            extra["organization"] = target_organization(self.request)
        return extra
