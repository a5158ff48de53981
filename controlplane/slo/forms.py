"""The admin's SLO form: checked as the API checks an SLO document.

The model's clean(), then `validation.verify` asks the SLO's source to parse every
query (and, for a latency SLI, to name its buckets), so a query Prometheus refuses is
refused here with Prometheus' words, exactly as the API refuses it.
"""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from controlplane.alerting.forms import PrometheusDurationField
from controlplane.slo import objectives
from controlplane.slo.documents import SLI_FIELDS
from controlplane.slo.models import SLO
from controlplane.slo.validation import verify

# Every field some SLI kind uses, and what it holds when its kind is not chosen.
SLI_EMPTY = {field: "" for fields in SLI_FIELDS.values() for field in fields}
SLI_EMPTY["threshold"] = None
# What an RPO or RTO uses (objectives.py), cleared for the other kinds, and the reverse.
OBJECTIVE_EMPTY = {"job": None, "incident_services": [], "recovery_target": None}

QUERY = {"rows": 2, "class": "vLargeTextField"}


class SLOForm(forms.ModelForm):
    slice_length = PrometheusDurationField(
        initial="5m", help_text='Time slices: the length of one slice, e.g. "1m", "5m".'
    )
    recovery_target = PrometheusDurationField(
        label="RPO or RTO",
        required=False,
        help_text='RPO: the oldest a backup may be, e.g. "24h" (empty: 24h). RTO: the '
        'longest a restore may take, e.g. "4h" (empty: 4h).',
    )

    class Meta:
        model = SLO
        fields = [
            "organization",
            "slug",
            "name",
            "description",
            "service",
            "enabled",
            "source",
            "kind",
            "good",
            "bad",
            "total",
            "metric",
            "selector",
            "expr",
            "op",
            "threshold",
            "job",
            "incident_services",
            "recovery_target",
            "objective",
            "window",
            "time_zone",
            "budgeting",
            "slice_length",
            "slice_target",
            "min_events",
            "page",
            "ticket",
            "escalation_policy",
            "runbook",
            "labels",
        ]
        widgets = {
            "good": forms.Textarea(attrs=QUERY),
            "bad": forms.Textarea(attrs=QUERY),
            "total": forms.Textarea(attrs=QUERY),
            "selector": forms.Textarea(attrs=QUERY),
            "expr": forms.Textarea(attrs={**QUERY, "rows": 3}),
            "description": forms.Textarea(attrs={"rows": 3, "class": "vLargeTextField"}),
        }

    def clean(self) -> dict:
        cleaned = super().clean()
        kind = cleaned.get("kind")
        if kind in SLI_FIELDS:
            # What another kind of SLI would use is cleared, as a document of this kind
            # leaves it out (documents.apply): the row says one thing.
            for field, empty in SLI_EMPTY.items():
                if field in self.fields and field not in SLI_FIELDS[kind]:
                    cleaned[field] = empty
            cleaned.update(OBJECTIVE_EMPTY)
        elif kind in objectives.KINDS:
            # An RPO or RTO reads no query and no source.
            cleaned.update({**SLI_EMPTY, "source": None})
            if kind == objectives.RPO or cleaned.get("incident_services") is None:
                cleaned["incident_services"] = []
        return cleaned

    def _post_clean(self) -> None:
        # The model's own clean() runs here; the source is only asked once the SLO is
        # otherwise valid, so a typo elsewhere costs no round trip.
        super()._post_clean()
        if self.errors:
            return
        try:
            verify(self.instance)
        except ValidationError as error:
            self._update_errors(error)
