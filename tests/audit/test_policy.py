"""The retention policy: its categories and defaults, RETENTION_DAYS checked at start,
and per-organisation overrides refused at save (model, database, admin) when out of
bounds or of no category."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import IntegrityError, transaction

from controlplane import environment as env
from controlplane.audit import policy, retention
from controlplane.audit.models import AuditEvent, RetentionOverride
from controlplane.catalog.models import Role
from controlplane.slo import history, windows

# --- the policy itself (pure) ---------------------------------------------------------------


def test_defaults_are_the_documented_table():
    assert policy.defaults() == {
        "audit_events": 365,
        "notifications": 90,
        "job_runs": 90,
        "alerts": 180,
        "slo_snapshots": 400,
    }


def test_environment_changes_only_the_categories_it_names():
    days = policy.defaults({"audit_events": 730, "notifications": 30})

    assert days["audit_events"] == 730
    assert days["notifications"] == 30
    assert days["alerts"] == 180


@pytest.mark.parametrize(
    ("category", "days", "message"),
    [
        ("audit_event", 30, "unknown retention category 'audit_event'"),
        ("notifications", 0, "the retention of notifications must be at least 1 day, got 0"),
        ("job_runs", -5, "the retention of job_runs must be at least 1 day, got -5"),
        ("alerts", "30", "the retention of alerts must be a whole number of days"),
        ("alerts", 2.5, "the retention of alerts must be a whole number of days"),
        ("alerts", True, "the retention of alerts must be a whole number of days"),
        ("audit_events", 36_501, "must be at most 36500 days, got 36501"),
        ("slo_snapshots", 30, "the retention of slo_snapshots must be at least 93 days, got 30"),
        ("slo_snapshots", 401, "the retention of slo_snapshots must be at most 400 days"),
    ],
)
def test_out_of_bounds_days_are_refused_naming_the_category(category, days, message):
    with pytest.raises(policy.PolicyError) as refused:
        policy.check_days(category, days)

    assert message in str(refused.value)


def test_unknown_category_is_an_error_of_the_category_field_listing_the_known_ones():
    with pytest.raises(policy.PolicyError) as refused:
        policy.check_days("logs", 30)

    assert refused.value.field == "category"
    assert "known: audit_events, notifications, job_runs, alerts, slo_snapshots" in str(
        refused.value
    )


def test_any_day_count_within_bounds_is_allowed_longer_or_shorter_than_the_default():
    assert policy.check_days("notifications", 1) == 1
    assert policy.check_days("audit_events", 30) == 30
    assert policy.check_days("audit_events", 36_500) == 36_500
    assert policy.check_days("slo_snapshots", 93) == 93
    assert policy.check_days("slo_snapshots", 400) == 400


def test_the_trail_is_kept_a_month_at_least_so_no_manager_purges_their_own_edits():
    with pytest.raises(policy.PolicyError, match="at least 30 days, got 29"):
        policy.check_days("audit_events", 29)


def test_slo_bounds_follow_the_slo_history_and_the_longest_window():
    # Keeping snapshots longer than the history keeps any would promise what is not kept.
    assert policy.SLO_HISTORY_DAYS == history.DAILY_UNTIL.days
    # The longest calendar quarter, with a daylight-saving hour, fits in the floor.
    longest = max(
        end - start
        for zone in ("UTC", "Europe/Paris", "America/New_York", "Australia/Sydney")
        for month in (1, 4, 7, 10)
        for start, end in [
            windows.period_bounds("quarter", zone, datetime(2025, month, 15, tzinfo=UTC))
        ]
    )
    assert longest.days == 92
    assert longest.total_seconds() <= policy.SLO_WINDOW_DAYS * 86400


def test_overrides_are_checked_again_when_combined():
    assert policy.with_overrides({"alerts": 180}, {"alerts": 7}) == {"alerts": 7}
    with pytest.raises(policy.PolicyError, match="at least 1 day"):
        policy.with_overrides({"alerts": 180}, {"alerts": 0})


# --- RETENTION_DAYS ---------------------------------------------------------------------


def test_retention_days_reads_category_day_pairs(monkeypatch):
    monkeypatch.setenv("RETENTION_DAYS_T", " audit_events=730 , notifications=30,")
    assert env.retention_days("RETENTION_DAYS_T") == {"audit_events": 730, "notifications": 30}
    monkeypatch.setenv("RETENTION_DAYS_T", "")
    assert env.retention_days("RETENTION_DAYS_T") == {}
    monkeypatch.delenv("RETENTION_DAYS_T")
    assert env.retention_days("RETENTION_DAYS_T") == {}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("logs=30", "RETENTION_DAYS_T: unknown retention category 'logs'"),
        ("notifications=0", "RETENTION_DAYS_T: the retention of notifications must be at least 1"),
        ("alerts=-7", "RETENTION_DAYS_T: the retention of alerts must be at least 1 day, got -7"),
        ("job_runs=ninety", "RETENTION_DAYS_T: the retention of job_runs must be a whole number"),
        ("job_runs=1_000", "RETENTION_DAYS_T: the retention of job_runs must be a whole number"),
        ("job_runs=", "RETENTION_DAYS_T: the retention of job_runs must be a whole number"),
        (
            "slo_snapshots=30",
            "RETENTION_DAYS_T: the retention of slo_snapshots must be at least 93",
        ),
        ("audit_events", "RETENTION_DAYS_T must be category=days pairs"),
        ("=30", "RETENTION_DAYS_T must be category=days pairs"),
        ("alerts=30,alerts=40", "RETENTION_DAYS_T names alerts twice"),
    ],
)
def test_bad_retention_days_are_refused_naming_variable_and_category(monkeypatch, value, message):
    monkeypatch.setenv("RETENTION_DAYS_T", value)

    with pytest.raises(ImproperlyConfigured) as refused:
        env.retention_days("RETENTION_DAYS_T")

    assert message in str(refused.value)


def start(**variables) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "DEBUG", "SECRET_KEY"}}
    base.update({"SECRET_KEY": "x" * 40, **variables})
    return subprocess.run(
        [sys.executable, "manage.py", "check"], env=base, capture_output=True, text=True, timeout=60
    )


def test_bad_retention_days_stop_the_start_in_one_line():
    result = start(RETENTION_DAYS="audit_events=730,alerts=0")

    assert result.returncode != 0
    last = result.stderr.splitlines()[-1]
    assert "ImproperlyConfigured" in last
    assert "RETENTION_DAYS: the retention of alerts must be at least 1 day, got 0" in last
    assert "Traceback" not in result.stderr


def test_good_retention_days_start():
    result = start(RETENTION_DAYS="audit_events=730,notifications=30")

    assert result.returncode == 0, result.stderr


# --- per-organisation overrides -----------------------------------------------------------


@pytest.mark.django_db
def test_days_for_an_organisation_override_wins_over_environment_and_default(
    settings, org, other_org
):
    settings.RETENTION_DAYS = {"notifications": 30, "alerts": 60}
    RetentionOverride.objects.create(organization=org, category="alerts", days=400)

    assert retention.days_for(org.pk) == {
        "audit_events": 365,
        "notifications": 30,
        "job_runs": 90,
        "alerts": 400,
        "slo_snapshots": 400,
    }
    assert retention.days_for(other_org.pk)["alerts"] == 60
    assert retention.days_for(None)["alerts"] == 60


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("category", "days", "field", "message"),
    [
        ("alerts", 0, "days", "the retention of alerts must be at least 1 day, got 0"),
        ("alerts", -3, "days", "the retention of alerts must be at least 1 day, got -3"),
        ("alerts", 36_501, "days", "at most 36500 days"),
        ("slo_snapshots", 30, "days", "slo_snapshots must be at least 93 days"),
        ("logs", 30, "category", "unknown retention category 'logs'"),
    ],
)
def test_override_out_of_bounds_is_refused_at_save(org, category, days, field, message):
    override = RetentionOverride(organization=org, category=category, days=days)

    with pytest.raises(ValidationError) as refused:
        override.save()

    assert message in " ".join(refused.value.message_dict[field])
    assert not RetentionOverride.objects.exists()


@pytest.mark.django_db
def test_override_values_are_the_category_names_retention_reads(org):
    override = RetentionOverride(organization=org, category="audit_events", days=730)
    override.full_clean()
    override.save()

    assert retention.days_for(org.pk)["audit_events"] == 730
    assert [value for value, _ in RetentionOverride.CATEGORY_CHOICES] == list(policy.CATEGORIES)
    # Recorded in the trail, as every configuration change.
    event = AuditEvent.objects.get(object_type="audit.retentionoverride")
    assert event.action == "created"
    assert event.diff["days"] == {"to": 730}


@pytest.mark.django_db
def test_database_refuses_zero_days_written_past_the_model(org):
    override = RetentionOverride.objects.create(organization=org, category="alerts", days=30)

    with pytest.raises(IntegrityError), transaction.atomic():
        RetentionOverride.objects.filter(pk=override.pk).update(days=0)

    override.refresh_from_db()
    assert override.days == 30


@pytest.mark.django_db
def test_the_database_refuses_an_unknown_category_written_past_every_check(org):
    override = RetentionOverride.objects.create(organization=org, category="alerts", days=30)

    # A script's raw write skips clean(): the table's own constraint refuses it.
    with pytest.raises(IntegrityError), transaction.atomic():
        RetentionOverride.objects.filter(pk=override.pk).update(category="logs")

    override.refresh_from_db()
    assert override.category == "alerts"
    assert retention.days_for(org.pk)["alerts"] == 30


# --- the admin inline ---------------------------------------------------------------------


def organisation_form(org, *overrides: tuple[str, object], existing=()) -> dict:
    data = {
        "slug": org.slug,
        "name": org.name,
        "retention_overrides-TOTAL_FORMS": str(len(overrides) + len(existing)),
        "retention_overrides-INITIAL_FORMS": str(len(existing)),
        "retention_overrides-MIN_NUM_FORMS": "0",
        "retention_overrides-MAX_NUM_FORMS": "1000",
    }
    for index, row in enumerate([*existing, *overrides]):
        if isinstance(row, RetentionOverride):
            data[f"retention_overrides-{index}-id"] = str(row.pk)
            data[f"retention_overrides-{index}-organization"] = str(org.pk)
            data[f"retention_overrides-{index}-category"] = row.category
            data[f"retention_overrides-{index}-days"] = str(row.days)
        else:
            category, days = row
            data[f"retention_overrides-{index}-organization"] = str(org.pk)
            data[f"retention_overrides-{index}-category"] = category
            data[f"retention_overrides-{index}-days"] = str(days)
    return data


@pytest.mark.django_db
def test_manager_sets_an_override_in_the_organisation_admin(client, member, org):
    client.force_login(member(org, Role.MANAGER))
    url = f"/admin/catalog/organization/{org.pk}/change/"

    page = client.get(url)
    assert page.status_code == 200
    assert b"retention_overrides-TOTAL_FORMS" in page.content
    assert b"slo snapshots 93 to 400" in page.content  # the bounds, in the help text

    response = client.post(url, organisation_form(org, ("audit_events", 730)))

    assert response.status_code == 302, response.content.decode()[:2000]
    assert retention.days_for(org.pk)["audit_events"] == 730


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("category", "days", "message"),
    [
        ("alerts", 0, "the retention of alerts must be at least 1 day, got 0"),
        ("slo_snapshots", 30, "the retention of slo_snapshots must be at least 93 days"),
        ("logs", 30, "Select a valid choice. logs is not one of the available choices."),
    ],
)
def test_admin_inline_shows_why_an_override_is_refused(
    client, member, org, category, days, message
):
    client.force_login(member(org, Role.MANAGER))

    response = client.post(
        f"/admin/catalog/organization/{org.pk}/change/",
        organisation_form(org, (category, days)),
    )

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not RetentionOverride.objects.exists()


@pytest.mark.django_db
def test_viewer_sees_overrides_but_cannot_change_them(client, member, org):
    RetentionOverride.objects.create(organization=org, category="alerts", days=30)
    client.force_login(member(org, Role.VIEWER))
    url = f"/admin/catalog/organization/{org.pk}/change/"

    page = client.get(url)
    assert page.status_code == 200
    assert b"Retention override" in page.content

    override = RetentionOverride.objects.get()
    override.days = 1
    response = client.post(url, organisation_form(org, existing=[override]))

    assert response.status_code == 403
    assert RetentionOverride.objects.get().days == 30
