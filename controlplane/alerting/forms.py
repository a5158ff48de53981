"""The admin's rule and silence forms: Prometheus durations, and PromQL checked at save."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.core.exceptions import ValidationError

from controlplane.alerting.models import AlertRule, Silence
from controlplane.alerting.validation import verify_expression
from controlplane.promql.durations import format_duration, parse_duration


class PrometheusDurationField(forms.CharField):
    """A duration written as in a Prometheus rule file: "30s", "5m", "1h30m"."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("help_text", 'e.g. "30s", "5m", "1h30m"; "0s" for none.')
        super().__init__(**kwargs)

    def prepare_value(self, value):
        if isinstance(value, timedelta) and value >= timedelta(0):
            return format_duration(value)
        return value

    def to_python(self, value) -> timedelta | None:
        text = super().to_python(value)
        if text in self.empty_values:
            return None
        try:
            return parse_duration(text.strip())
        except ValueError as error:
            raise ValidationError(str(error).capitalize() + ".", code="invalid") from None


class AlertRuleForm(forms.ModelForm):
    for_duration = PrometheusDurationField(label="for", initial="0s")
    keep_firing_for = PrometheusDurationField(initial="0s")
    interval = PrometheusDurationField(label="evaluation interval", initial="1m")

    class Meta:
        model = AlertRule
        fields = [
            "organization",
            "key",
            "name",
            "service",
            "severity",
            "source",
            "expr",
            "op",
            "threshold",
            "for_duration",
            "keep_firing_for",
            "interval",
            "labels",
            "annotations",
            "runbook",
            "enabled",
        ]
        widgets = {"expr": forms.Textarea(attrs={"rows": 3, "class": "vLargeTextField"})}

    def _post_clean(self) -> None:
        # The model's own clean() runs here; the source is only asked once the rule
        # is otherwise valid, so a typo elsewhere costs no round trip.
        super()._post_clean()
        if self.errors:
            return
        try:
            verify_expression(self.instance)
        except ValidationError as error:
            self._update_errors(error)


class SilenceForm(forms.ModelForm):
    class Meta:
        model = Silence
        fields = ["organization", "matchers", "starts_at", "ends_at", "comment"]
