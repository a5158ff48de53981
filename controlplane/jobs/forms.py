"""How a job monitor is written: its schedule as one text, in the API (a cron expression
or a Prometheus duration), and the admin's form. Both are checked by the model's
clean(), so the admin and the API refuse the same things with the same words."""

from __future__ import annotations

from datetime import timedelta

from django import forms

from controlplane.alerting.forms import PrometheusDurationField
from controlplane.jobs.models import JobMonitor
from controlplane.promql.durations import format_duration, parse_duration

Schedule = JobMonitor.Schedule

SCHEDULE_EXAMPLES = 'a cron expression such as "0 2 * * *" or a period such as "1h"'


def read_schedule(text: str) -> tuple[str, str, timedelta | None]:
    """(schedule kind, cron, period) of a schedule written as one text.

    A Prometheus duration ("1h", "1d12h") is a period; anything else is a cron
    expression, which the model's clean() checks. The two cannot be confused: a cron
    expression has five fields separated by spaces, and no duration has a space. One
    word that is no duration ("hourly", "5x") is refused here, saying both forms.
    """
    text = text.strip()
    try:
        return Schedule.PERIOD, "", parse_duration(text)
    except ValueError as error:
        if not text or len(text.split()) == 1:
            raise ValueError(f"Give {SCHEDULE_EXAMPLES}; as a period, {error}.") from None
    return Schedule.CRON, text, None


def schedule_text(monitor: JobMonitor) -> str:
    """The schedule as the API writes it: the cron expression, or the period."""
    if monitor.schedule_kind == Schedule.PERIOD:
        return format_duration(monitor.period) if monitor.period is not None else ""
    return monitor.cron


def schedule_words(monitor: JobMonitor) -> str:
    """The schedule as a page says it: "0 2 * * * in Europe/Paris", "every 1h"."""
    if monitor.schedule_kind == Schedule.PERIOD:
        return f"every {schedule_text(monitor)}"
    return f"{monitor.cron} in {monitor.time_zone}"


def duration_text(value: timedelta | None) -> str | None:
    """A duration field as the API writes it ("15m"), or None."""
    return format_duration(value) if value is not None and value >= timedelta(0) else None


class JobMonitorForm(forms.ModelForm):
    period = PrometheusDurationField(
        required=False, help_text='Every-period schedules: the time between runs, e.g. "1h", "1d".'
    )
    grace = PrometheusDurationField(
        initial="15m", help_text='How late a run may start before the monitor is late, e.g. "15m".'
    )
    min_duration = PrometheusDurationField(
        label="minimum duration",
        required=False,
        help_text='A run shorter than this is too fast, e.g. "30s"; empty: no minimum.',
    )
    max_duration = PrometheusDurationField(
        label="maximum duration",
        required=False,
        help_text='A run longer than this timed out, e.g. "2h"; empty: no maximum.',
    )

    class Meta:
        model = JobMonitor
        fields = [
            "organization",
            "slug",
            "name",
            "kind",
            "service",
            "schedule_kind",
            "cron",
            "time_zone",
            "period",
            "grace",
            "min_duration",
            "max_duration",
            "ping_key",
            "runbook",
            "escalation_policy",
        ]

    def clean(self) -> dict:
        cleaned = super().clean()
        # What the other kind of schedule would use is cleared, so the row says one thing.
        if cleaned.get("schedule_kind") == Schedule.PERIOD:
            cleaned["cron"] = ""
        elif cleaned.get("schedule_kind") == Schedule.CRON:
            cleaned["period"] = None
        return cleaned
