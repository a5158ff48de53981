"""Escalation policies of the caller's organisation, by slug.

A policy is `{"slug", "name", "default", "steps": [{"delay": "0s", "channels":
["ops-slack"], "schedules": ["primary"]}], "repeat", "remind_every",
"notify_on_resolve"}`, durations in Prometheus' spelling, channels by name and on-call
schedules by slug within the organisation (a step's `schedules` may be left out; a
step needs a channel or a schedule). It is checked as the
admin checks it and as an alert will run it (escalation.PolicySnapshot.validate), every
refusal naming its field: `steps[1].delay`, `steps[0].channels`, `repeat`.

Every write raises `version`, in the transaction that replaces the steps: alerts
already escalating keep the snapshot they opened on. Steps are replaced as a whole
whenever a PUT or PATCH gives them.

`"default": true` makes the policy the organisation's default, and the previous
default stops being it in the same transaction: there is never a moment without a
default (an alert opened then would notify nobody), and the order in which a client
applies its policies does not matter.
"""

from __future__ import annotations

from datetime import timedelta

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Prefetch, ProtectedError
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from controlplane.api.access import target_organization
from controlplane.api.bodies import StrictBody
from controlplane.api.errors import Conflict
from controlplane.api.rules import PrometheusDuration
from controlplane.api.schema import ORGANIZATION, SAVED_CONCURRENTLY, conflict
from controlplane.api.scoping import OrganizationScopedViewSet
from controlplane.catalog.models import Organization
from controlplane.oncall.models import OnCallSchedule
from controlplane.paging.escalation import (
    MOST_REPEATS,
    MOST_STEPS,
    PolicyError,
    PolicySnapshot,
    StepSnapshot,
)
from controlplane.paging.models import EscalationPolicy, EscalationStep, NotificationChannel
from controlplane.promql.durations import format_duration

# A step notifying more channels than this is a mistake; the bound also keeps the
# one query that finds every named channel a sensible size.
MOST_CHANNELS_PER_STEP = 50

# What a PUT or a POST leaves out takes these values; a PATCH keeps the current ones.
DEFAULTS = {
    "is_default": False,
    "repeat": 0,
    "remind_every": None,
    "notify_on_resolve": False,
}
# Each step's delay, channels and on-call schedules, in order.
Steps = list[tuple[timedelta, list[NotificationChannel], list[OnCallSchedule]]]

# Model field -> API name, where they differ.
MODEL_NAMES = {"is_default": "default"}


class StepSerializer(StrictBody, serializers.Serializer):
    """One step: wait `delay` after the previous step (the first step: after the alert
    opened), then notify `channels`. Fields not listed here are refused."""

    delay = PrometheusDuration(required=False, help_text='e.g. "0s" (the default), "5m".')
    channels = serializers.ListField(
        child=serializers.CharField(max_length=64),
        max_length=MOST_CHANNELS_PER_STEP,
        help_text="Names of channels of the policy's organisation.",
    )
    schedules = serializers.ListField(
        child=serializers.CharField(max_length=64),
        max_length=MOST_CHANNELS_PER_STEP,
        required=False,
        help_text="Slugs of on-call schedules of the policy's organisation: whoever is on "
        "call in them when the step fires is emailed.",
    )

    def to_representation(self, step: EscalationStep) -> dict:
        return {
            "delay": format_duration(step.delay),
            "channels": [channel.name for channel in step.channels.all()],
            "schedules": [schedule.slug for schedule in step.schedules.all()],
        }


class PolicySerializer(StrictBody, serializers.Serializer):
    """An escalation policy. Fields not listed here are refused: the 400 answer names
    them; a refused part of a step is named `steps[<index from 0>].<field>`."""

    slug = serializers.SlugField(max_length=64, help_text="Unique in the organisation.")
    name = serializers.CharField(max_length=200)
    default = serializers.BooleanField(
        source="is_default",
        required=False,
        help_text="The policy of the organisation's rules that name none. Setting it on one "
        "policy takes it off the previous default in the same write.",
    )
    steps = StepSerializer(many=True)
    repeat = serializers.IntegerField(
        required=False,
        min_value=0,
        max_value=MOST_REPEATS,
        help_text="Run the steps again this many times after the last one.",
    )
    remind_every = PrometheusDuration(
        required=False,
        allow_null=True,
        help_text="While firing and unacknowledged, remind every channel notified so far.",
    )
    notify_on_resolve = serializers.BooleanField(required=False)
    version = serializers.IntegerField(
        read_only=True, help_text="Raised by every write; an alert runs on the version it opened."
    )
    updated_at = serializers.DateTimeField(read_only=True)

    def to_internal_value(self, data: object) -> dict:
        try:
            return super().to_internal_value(data)
        except ValidationError as error:
            raise ValidationError(_flat_steps(error.detail)) from None

    def validate(self, attrs: dict) -> dict:
        if self.instance is None:
            organization: Organization = self.context["organization"]
            policy = EscalationPolicy(organization=organization)
        else:
            policy = EscalationPolicy.objects.get(pk=self.instance.pk)
        values = {} if self.partial else dict(DEFAULTS)
        values.update(attrs)
        given_steps = values.pop("steps", None)
        for field, value in values.items():
            setattr(policy, field, value)
        if given_steps is not None:
            steps = _named_steps(policy.organization_id, given_steps)
        else:
            steps = [
                (step.delay, list(step.channels.all()), list(step.schedules.all()))
                for step in policy.steps.prefetch_related("channels", "schedules").order_by(
                    "position"
                )
            ]
        self._check_slug_is_free(policy)
        try:
            policy.full_clean(exclude=["organization"])
        except DjangoValidationError as error:
            raise ValidationError(_api_errors(error)) from None
        try:
            PolicySnapshot(
                version=policy.version or 1,
                steps=tuple(
                    StepSnapshot(
                        delay=delay,
                        channels=tuple(sorted(c.pk for c in chosen)),
                        schedules=tuple(sorted(s.pk for s in rotas)),
                    )
                    for delay, chosen, rotas in steps
                ),
                repeat=policy.repeat,
                remind_every=policy.remind_every,
                notify_on_resolve=policy.notify_on_resolve,
            ).validate()
        except PolicyError as error:
            raise ValidationError(error.errors) from None
        return {"policy": policy, "steps": steps if given_steps is not None else None}

    def _check_slug_is_free(self, policy: EscalationPolicy) -> None:
        taken = EscalationPolicy.objects.filter(
            organization_id=policy.organization_id, slug=policy.slug
        ).exclude(pk=policy.pk)
        if taken.exists():
            raise ValidationError(
                {"slug": [f"A policy with the slug {policy.slug!r} already exists."]}
            )

    def _save(self, policy: EscalationPolicy, steps: Steps | None) -> EscalationPolicy:
        """Save the policy, and its steps when given, raising its version (module doc)."""
        created = policy.pk is None
        try:
            with transaction.atomic():
                if not created:
                    EscalationPolicy.objects.select_for_update().filter(pk=policy.pk).exists()
                if steps is not None:
                    _lock_channels(steps)
                if policy.is_default:
                    EscalationPolicy.objects.filter(
                        organization_id=policy.organization_id, is_default=True
                    ).exclude(pk=policy.pk).update(is_default=False)
                if created:
                    policy.save()
                else:
                    # Not `version`: a concurrent write may have raised it since it was
                    # read, and it is raised below, relative to what is stored.
                    policy.save(update_fields=[*DEFAULTS, "slug", "name", "updated_at"])
                if steps is not None:
                    _replace_steps(policy, steps)
                if not created:
                    EscalationPolicy.objects.filter(pk=policy.pk).update(version=F("version") + 1)
        except IntegrityError:
            self._check_slug_is_free(policy)
            raise Conflict(
                f"The policy {policy.slug!r} changed at the same time elsewhere; try again."
            ) from None
        return policy

    def create(self, validated_data: dict) -> EscalationPolicy:
        return self._save(validated_data["policy"], validated_data["steps"])

    def update(self, instance: EscalationPolicy, validated_data: dict) -> EscalationPolicy:
        return self._save(validated_data["policy"], validated_data["steps"])


def _flat_steps(detail: object) -> object:
    """DRF nests a step's errors by its index, {"steps": {1: {"delay": [...]}}}; the API
    names them as paging.escalation does: {"steps[1].delay": [...]}."""
    if not isinstance(detail, dict):
        return detail
    by_index = detail.get("steps")
    if isinstance(by_index, list):  # DRF before 3.15 said it as a list, {} for a good step
        by_index = dict(enumerate(by_index))
    if not isinstance(by_index, dict) or not all(isinstance(i, int) for i in by_index):
        return detail  # not a list at all: one message about "steps"
    flat = {name: value for name, value in detail.items() if name != "steps"}
    for index, errors in sorted(by_index.items()):
        where = f"steps[{index}]"
        if not errors:
            continue
        if not isinstance(errors, dict):
            flat.setdefault(where, []).extend(_messages(errors))
            continue
        for name, value in errors.items():
            key = where if name == "non_field_errors" else f"{where}.{name}"
            flat.setdefault(key, []).extend(_messages(value))
    return flat


def _messages(value: object) -> list[str]:
    """Every message in a DRF error detail; a list item's prefixed with its number."""
    if isinstance(value, dict):  # a ListField's errors, by item index
        return [
            f"Item {index + 1}: {message}" if isinstance(index, int) else message
            for index, messages in value.items()
            for message in _messages(messages)
        ]
    if isinstance(value, list):
        return [message for item in value for message in _messages(item)]
    return [str(value)]


def _named_steps(organization_id: int, given: list[dict]) -> Steps:
    """The steps with their channels found by name in the organisation (one query)."""
    if len(given) > MOST_STEPS:
        raise ValidationError({"steps": [f"A policy has at most {MOST_STEPS} steps."]})
    names = {name for step in given for name in step.get("channels", ())}
    found = {
        channel.name: channel
        for channel in NotificationChannel.objects.filter(
            organization_id=organization_id, name__in=names
        )
    }
    slugs = {slug for step in given for slug in step.get("schedules", ())}
    rotas = (
        {
            schedule.slug: schedule
            for schedule in OnCallSchedule.objects.filter(
                organization_id=organization_id, slug__in=slugs
            )
        }
        if slugs
        else {}
    )
    errors: dict[str, list[str]] = {}
    steps = []
    for index, step in enumerate(given):
        where = f"steps[{index}].channels"
        if "channels" not in step:  # a PATCH does not make DRF ask for it
            errors[where] = ["This field is required."]
            continue
        chosen, seen = [], set()
        for name in step["channels"]:
            if name in seen:
                errors.setdefault(where, []).append(f"{name!r} is listed more than once.")
            elif name not in found:
                # Another organisation's channel is unknown here, as its pages are.
                errors.setdefault(where, []).append(
                    f"Unknown channel {name!r} in this organisation."
                )
            else:
                chosen.append(found[name])
            seen.add(name)
        picked, seen = [], set()
        for slug in step.get("schedules", ()):
            if slug in seen:
                problem = f"{slug!r} is listed more than once."
            elif slug not in rotas:
                problem = f"Unknown on-call schedule {slug!r} in this organisation."
            else:
                picked.append(rotas[slug])
                problem = ""
            if problem:
                errors.setdefault(f"steps[{index}].schedules", []).append(problem)
            seen.add(slug)
        steps.append((step.get("delay", timedelta(0)), chosen, picked))
    if errors:
        raise ValidationError(errors)
    return steps


def _lock_channels(steps: Steps) -> None:
    """Lock the channels the steps name. A channel's DELETE locks it before looking for
    steps that name it (api/channels.py), so a step never comes to name a channel
    deleted at the same moment."""
    wanted = {channel.pk for _, chosen, _ in steps for channel in chosen}
    locked = set(
        NotificationChannel.objects.select_for_update()
        .filter(pk__in=wanted)
        .values_list("pk", flat=True)
    )
    if locked != wanted:
        raise Conflict("A channel the steps name was deleted at the same time; try again.")


def _replace_steps(policy: EscalationPolicy, steps: Steps) -> None:
    policy.steps.all().delete()
    created = EscalationStep.objects.bulk_create(
        EscalationStep(policy=policy, position=position, delay=delay)
        for position, (delay, _, _) in enumerate(steps)
    )
    # Through the relations, not their tables: the audit trail records what the
    # relations' add() announces (two queries a step, and a step's event).
    for step, (_, chosen, picked) in zip(created, steps, strict=True):
        if chosen:
            step.channels.add(*chosen)
        if picked:
            step.schedules.add(*picked)


def _api_errors(error: DjangoValidationError) -> dict[str, list[str]]:
    if not hasattr(error, "error_dict"):
        return {"non_field_errors": error.messages}
    return {
        MODEL_NAMES.get(field, "non_field_errors" if field == "__all__" else field): messages
        for field, messages in error.message_dict.items()
    }


def _with_steps() -> Prefetch:
    """Each policy's steps in order, each step's channels by name and schedules by slug:
    three queries for a page."""
    return Prefetch(
        "steps",
        queryset=EscalationStep.objects.order_by("position").prefetch_related(
            Prefetch("channels", queryset=NotificationChannel.objects.order_by("name")),
            Prefetch("schedules", queryset=OnCallSchedule.objects.order_by("slug")),
        ),
    )


@extend_schema_view(
    create=extend_schema(
        parameters=[ORGANIZATION], responses={201: PolicySerializer, 409: SAVED_CONCURRENTLY}
    ),
    retrieve=extend_schema(parameters=[ORGANIZATION]),
    update=extend_schema(
        parameters=[ORGANIZATION], responses={200: PolicySerializer, 409: SAVED_CONCURRENTLY}
    ),
    partial_update=extend_schema(
        parameters=[ORGANIZATION], responses={200: PolicySerializer, 409: SAVED_CONCURRENTLY}
    ),
    destroy=extend_schema(
        parameters=[ORGANIZATION],
        responses={
            204: None,
            409: conflict("Rules still name the policy: `rules` names them.", "PolicyInUse"),
        },
    ),
)
class PolicyViewSet(
    viewsets.mixins.ListModelMixin,
    viewsets.mixins.RetrieveModelMixin,
    viewsets.mixins.CreateModelMixin,
    viewsets.mixins.UpdateModelMixin,
    viewsets.mixins.DestroyModelMixin,
    OrganizationScopedViewSet,
):
    """Who is told of an alert, and when. Writes need a write token or a manager's
    session."""

    queryset = EscalationPolicy.objects.prefetch_related(_with_steps()).order_by(
        "organization_id", "slug"
    )
    serializer_class = PolicySerializer
    lookup_field = "slug"

    def get_serializer_context(self) -> dict:
        extra = super().get_serializer_context()
        if self.action == "create":
            extra["organization"] = target_organization(self.request)
        return extra

    def perform_create(self, serializer: PolicySerializer) -> None:
        serializer.instance = self._fresh(serializer.save())

    def perform_update(self, serializer: PolicySerializer) -> None:
        serializer.instance = self._fresh(serializer.save())

    def _fresh(self, policy: EscalationPolicy) -> EscalationPolicy:
        # The answer shows the steps as stored, read as a GET reads them.
        return EscalationPolicy.objects.prefetch_related(_with_steps()).get(pk=policy.pk)

    def destroy(self, request: Request, *args, **kwargs) -> Response:
        policy = self.get_object()
        try:
            policy.delete()
        except ProtectedError:
            keys = sorted(policy.rules.values_list("key", flat=True))
            users = [f"{len(keys)} rule(s): {', '.join(keys)}"] if keys else []
            integrations = sorted(policy.alertmanager_integrations.values_list("slug", flat=True))
            if integrations:
                users.append(
                    f"{len(integrations)} Alertmanager integration(s): {', '.join(integrations)}"
                )
            return Response(
                {
                    "detail": f"The policy {policy.slug!r} is named by {' and '.join(users)}. "
                    "Point them at another policy first.",
                    "rules": keys,
                },
                status=409,
            )
        return Response(status=204)
