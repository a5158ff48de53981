"""Channels, escalation policies and the delivery ledger in the admin, behind the
organisation walls. Notifications change only through the engine: the admin shows
them and offers "retry now"."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin, messages
from django.db.models import F, Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from controlplane.catalog import tenancy
from controlplane.catalog.admin import OrganizationScopedAdmin, ReadOnlyRows
from controlplane.oncall.models import OnCallSchedule
from controlplane.paging import engine
from controlplane.paging.forms import ChannelForm, StepFormSet
from controlplane.paging.models import (
    AlertmanagerIntegration,
    EscalationPolicy,
    EscalationStep,
    IntegrationHealth,
    Notification,
    NotificationChannel,
)


@admin.register(NotificationChannel)
class NotificationChannelAdmin(OrganizationScopedAdmin):
    form = ChannelForm
    list_display = ["name", "organization", "kind", "deliveries", "updated_at"]
    list_filter = ["kind"]
    search_fields = ["name"]
    list_select_related = ["organization", "health"]
    readonly_fields = ["deliveries", "created_at", "updated_at"]
    actions = ["send_test_notification"]

    def get_fields(self, request: HttpRequest, obj=None) -> list[str]:
        fields = ["organization", "name", "kind", "config_text"]
        if obj is not None:
            fields += ["deliveries", "created_at", "updated_at"]
        return fields

    @admin.display(description="deliveries")
    def deliveries(self, channel: NotificationChannel) -> str:
        health = getattr(channel, "health", None)
        if health is None:
            return "nothing sent yet"
        if health.failing:
            return (
                f"FAILING: {health.consecutive_failures} failures in a row, the last "
                f"{timezone.localtime(health.last_failure_at):%Y-%m-%d %H:%M}: {health.last_error}"
            )
        if health.consecutive_failures:
            return f"{health.consecutive_failures} failure(s) since the last success"
        return "ok"

    @admin.action(description="Send a test notification")
    def send_test_notification(self, request: HttpRequest, queryset: QuerySet) -> None:
        managed = tenancy.scope(
            queryset, tenancy.organization_ids(request.user, tenancy.MANAGE_ROLES)
        )
        sent = engine.send_test(list(managed))
        self.message_user(
            request,
            f"{sent} test notification(s) queued; their outcome shows under Notifications.",
            messages.SUCCESS,
        )


class EscalationStepInline(admin.TabularInline):
    model = EscalationStep
    formset = StepFormSet
    fields = ["position", "delay", "channels", "schedules"]
    extra = 1
    ordering = ["position"]

    # Steps are part of their policy: whoever may edit the policy may edit its steps
    # (Django's model permissions are not how this admin guards anything).
    def _policy_admin(self) -> OrganizationScopedAdmin:
        return self.admin_site._registry[EscalationPolicy]

    def _may_edit(self, request: HttpRequest, obj) -> bool:
        policies = self._policy_admin()
        if obj is None:
            return policies.has_add_permission(request)
        return policies.has_change_permission(request, obj)

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return self._policy_admin().has_view_permission(request, obj)

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return self._may_edit(request, obj)

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return self._may_edit(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return self._may_edit(request, obj)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "channels":
            kwargs["queryset"] = tenancy.scope(
                NotificationChannel.objects.select_related("organization"),
                tenancy.organization_ids(request.user, tenancy.MANAGE_ROLES),
            )
        if db_field.name == "schedules":
            kwargs["queryset"] = tenancy.scope(
                OnCallSchedule.objects.select_related("organization"),
                tenancy.organization_ids(request.user, tenancy.MANAGE_ROLES),
            )
        return super().formfield_for_manytomany(db_field, request, **kwargs)


@admin.register(EscalationPolicy)
class EscalationPolicyAdmin(OrganizationScopedAdmin):
    list_display = ["slug", "name", "organization", "is_default", "steps_shown", "version"]
    list_filter = ["is_default"]
    search_fields = ["slug", "name"]
    list_select_related = ["organization"]
    readonly_fields = ["version", "updated_at"]
    fields = [
        "organization",
        "slug",
        "name",
        "is_default",
        "repeat",
        "remind_every",
        "notify_on_resolve",
        "version",
        "updated_at",
    ]
    inlines = [EscalationStepInline]

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).prefetch_related("steps__channels", "steps__schedules")

    @admin.display(description="steps")
    def steps_shown(self, policy: EscalationPolicy) -> str:
        return "; ".join(
            f"after {step.delay}: "
            + ", ".join(
                [c.name for c in step.channels.all()]
                + [f"on call in {s.slug}" for s in step.schedules.all()]
            )
            for step in policy.steps.all()
        )

    def save_model(self, request, obj: EscalationPolicy, form, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if change:
            # Alerts opened from now on run on the new version; open ones keep theirs.
            EscalationPolicy.objects.filter(pk=obj.pk).update(version=F("version") + 1)
            obj.refresh_from_db(fields=["version"])


class NotificationStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return Notification.State.choices

    def queryset(self, request, queryset):
        return queryset.filter(state=self.value()) if self.value() else queryset


@admin.register(Notification)
class NotificationAdmin(ReadOnlyRows, OrganizationScopedAdmin):
    list_display = [
        "created_at",
        "alert",
        "channel_name",
        "channel_kind",
        "event",
        "state",
        "attempts",
        "last_status",
        "last_error",
        "sent_at",
    ]
    list_filter = [NotificationStateFilter, "channel_kind", "event", "is_test"]
    search_fields = ["channel_name", "alert__rule_key", "trace_id"]
    list_select_related = ["alert", "organization"]
    actions = ["retry_now"]

    @admin.action(description="Retry now (dead or failed notifications)")
    def retry_now(self, request: HttpRequest, queryset: QuerySet) -> None:
        managed = tenancy.scope(
            queryset, tenancy.organization_ids(request.user, tenancy.MANAGE_ROLES)
        )
        count = engine.retry_now(managed)
        if count:
            engine.nudge_delivery()
        self.message_user(request, f"{count} notification(s) queued again.", messages.SUCCESS)

    def get_actions(self, request: HttpRequest):
        actions = super().get_actions(request)
        managed = tenancy.organization_ids(request.user, tenancy.MANAGE_ROLES)
        if managed is not None and not managed:
            actions.pop("retry_now", None)
        return actions


def intake_url(key: str) -> str:
    """Where an Alertmanager posts with the integration's key: its webhook_configs url."""
    return f"{settings.SITE_URL}{reverse('alertmanager-intake-key', args=[key])}"


class IntegrationHealthFilter(admin.SimpleListFilter):
    title = "payloads"
    parameter_name = "payloads"

    def lookups(self, request, model_admin):
        return [
            ("never", "none received yet"),
            ("accepted", "last one accepted"),
            ("refused", "last one refused"),
        ]

    def queryset(self, request, queryset):
        received = Q(health__last_received_at__isnull=False)
        refused = Q(health__last_refused_at__isnull=False) & (
            Q(health__last_received_at__isnull=True)
            | Q(health__last_refused_at__gt=F("health__last_received_at"))
        )
        if self.value() == "never":
            return queryset.filter(~received & ~refused)
        if self.value() == "accepted":
            return queryset.filter(received).exclude(refused)
        if self.value() == "refused":
            return queryset.filter(refused)
        return queryset


@admin.register(AlertmanagerIntegration)
class AlertmanagerIntegrationAdmin(OrganizationScopedAdmin):
    """An Alertmanager sending here. Its key is shown once, when the integration is made
    or its key regenerated: only a digest is stored, as for API tokens."""

    list_display = [
        "slug",
        "name",
        "organization",
        "service",
        "escalation_policy",
        "key_prefix",
        "payloads",
    ]
    list_filter = [IntegrationHealthFilter, ("escalation_policy", admin.EmptyFieldListFilter)]
    search_fields = ["slug", "name", "key_prefix"]
    list_select_related = ["organization", "service", "escalation_policy", "health"]
    readonly_fields = ["key_shown", "payloads", "created_at", "updated_at"]
    actions = ["regenerate_key"]

    def get_fields(self, request: HttpRequest, obj=None) -> list[str]:
        fields = ["organization", "slug", "name", "service", "escalation_policy"]
        if obj is not None:
            fields += ["key_shown", "payloads", "created_at", "updated_at"]
        return fields

    def get_readonly_fields(self, request: HttpRequest, obj=None) -> list[str]:
        # Its alerts stay in the organisation they were opened in.
        if obj is not None:
            return [*self.readonly_fields, "organization"]
        return self.readonly_fields

    @admin.display(description="key")
    def key_shown(self, integration: AlertmanagerIntegration) -> str:
        return (
            f"{integration.key_prefix}… (shown once, when made; the list's action "
            "regenerates a lost one). Alertmanager posts to "
            f"{intake_url('KEY').replace('KEY', integration.key_prefix + '…')}"
        )

    @admin.display(description="payloads")
    def payloads(self, integration: AlertmanagerIntegration) -> str:
        try:
            health = integration.health
        except IntegrationHealth.DoesNotExist:
            return "none received yet"
        if health.refusing:
            return (
                f"REFUSED at {timezone.localtime(health.last_refused_at):%Y-%m-%d %H:%M:%S}: "
                f"{health.last_error}"
            )
        if health.last_received_at is None:
            return "none received yet"
        return f"last received {timezone.localtime(health.last_received_at):%Y-%m-%d %H:%M:%S}"

    def save_model(self, request, obj: AlertmanagerIntegration, form, change: bool) -> None:
        key = "" if change else obj.new_key()
        super().save_model(request, obj, form, change)
        if key:
            _show_key(request, obj, key)

    @admin.action(description="Regenerate the key (the old one stops working)")
    def regenerate_key(self, request: HttpRequest, queryset: QuerySet) -> None:
        managed = tenancy.scope(
            queryset, tenancy.organization_ids(request.user, tenancy.MANAGE_ROLES)
        )
        for integration in managed:
            key = integration.new_key()
            integration.save(update_fields=["key_prefix", "key_digest", "updated_at"])
            _show_key(request, integration, key)

    def get_actions(self, request: HttpRequest):
        actions = super().get_actions(request)
        managed = tenancy.organization_ids(request.user, tenancy.MANAGE_ROLES)
        if managed is not None and not managed:
            actions.pop("regenerate_key", None)
        return actions


def _show_key(request: HttpRequest, integration: AlertmanagerIntegration, key: str) -> None:
    messages.warning(
        request,
        f"The key of {integration.slug} is {key} — copy it now: it is stored hashed and will "
        f"not be shown again. Alertmanager's webhook_configs url: {intake_url(key)}",
    )
