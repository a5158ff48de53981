"""Admin forms of paging: a channel's configuration as JSON, checked per kind, its
secrets write-only; a policy's steps checked as the alert will run them."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError

from controlplane.paging import channels
from controlplane.paging.channels import ChannelConfigError
from controlplane.paging.escalation import PolicyError, PolicySnapshot, StepSnapshot
from controlplane.paging.models import NotificationChannel

CONFIG_HELP = (
    'Email: {"to": ["oncall@example.com"]}. Slack: {"url": "https://hooks.slack.com/..."}. '
    'PagerDuty: {"routing_key": "<32 characters>", "url": "<optional endpoint>"}. '
    'Webhook: {"url": "https://...", "secret": "<optional>", "headers": {"X-Team": "ops"}}. '
    "Secrets are shown masked: leave them as shown (or leave them out) to keep them."
)


class ChannelForm(forms.ModelForm):
    config_text = forms.CharField(
        label="Configuration",
        widget=forms.Textarea(attrs={"rows": 6, "cols": 80, "spellcheck": "false"}),
        help_text=CONFIG_HELP,
    )

    class Meta:
        model = NotificationChannel
        fields = ["organization", "name", "kind"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["config_text"].initial = json.dumps(self.instance.masked_config(), indent=2)
        self.parsed: channels.ChannelConfig | None = None

    def _post_clean(self) -> None:
        if self.parsed is None:
            return  # the configuration did not parse: its errors are shown, nothing saved
        super()._post_clean()

    def _update_errors(self, errors: ValidationError) -> None:
        # The model names its stored JSON `config`; here it is typed into config_text.
        if hasattr(errors, "error_dict") and "config" in errors.error_dict:
            errors.error_dict["config_text"] = errors.error_dict.pop("config")
        super()._update_errors(errors)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        kind, text = cleaned.get("kind"), cleaned.get("config_text")
        if not kind or text is None:
            return cleaned
        try:
            raw = json.loads(text)
        except ValueError as error:
            self.add_error("config_text", f"This is not JSON: {error.msg} (line {error.lineno}).")
            return cleaned
        hosts = settings.SLACK_WEBHOOK_HOSTS
        try:
            if self.instance.pk and self.instance.kind == kind:
                self.parsed = channels.merge_update(
                    self.instance.settings(), raw, slack_hosts=hosts
                )
            else:
                self.parsed = channels.parse_config(kind, raw, slack_hosts=hosts)
        except ChannelConfigError as error:
            self.add_error("config_text", error.messages("config"))
            return cleaned
        self.instance.config = channels.to_json(self.parsed)
        return cleaned


class StepFormSet(forms.BaseInlineFormSet):
    """The steps as a whole: at least one, each with channels and on-call schedules
    of the policy's own organisation, and together a policy an alert can run on."""

    def clean(self) -> None:
        super().clean()
        if any(self.errors):
            return
        policy = self.instance
        steps = []
        for form in self.forms:
            if not form.cleaned_data or form.cleaned_data.get("DELETE"):
                continue
            chosen = list(form.cleaned_data.get("channels") or [])
            rotas = list(form.cleaned_data.get("schedules") or [])
            named = (
                ("channels", [(c.name, c.organization_id) for c in chosen]),
                ("schedules", [(s.slug, s.organization_id) for s in rotas]),
            )
            for field, picked in named:
                foreign = [name for name, owner in picked if owner != policy.organization_id]
                if foreign:
                    form.add_error(
                        field, f"These belong to another organisation: {', '.join(foreign)}."
                    )
                    return
            steps.append((form.cleaned_data.get("position") or 0, form.cleaned_data, chosen, rotas))
        if not steps:
            raise ValidationError("A policy needs at least one step.")
        steps.sort(key=lambda step: step[0])
        try:
            PolicySnapshot(
                version=policy.version or 1,
                steps=tuple(
                    StepSnapshot(
                        delay=data.get("delay") or timedelta(0),
                        channels=tuple(sorted(c.pk for c in chosen)),
                        schedules=tuple(sorted(s.pk for s in rotas)),
                    )
                    for _, data, chosen, rotas in steps
                ),
                repeat=policy.repeat or 0,
                remind_every=policy.remind_every,
                notify_on_resolve=policy.notify_on_resolve,
            ).validate()
        except PolicyError as error:
            raise ValidationError(error.messages()) from None
