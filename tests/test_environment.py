"""Malformed environment values stop the start with the variable's name."""

import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from controlplane import environment as env


def start(**variables) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "DEBUG", "SECRET_KEY"}}
    base.update({"SECRET_KEY": "x" * 40, **variables})
    return subprocess.run(
        [sys.executable, "manage.py", "check"], env=base, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_URL", "notascheme://x"),
        ("CELERY_BROKER_URL", "kafka://broker"),
        ("DEBUG", "maybe"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"),
        ("TRACE_URL_TEMPLATE", "https://grafana.example/explore"),
        ("EMAIL_URL", "pop3://mail"),
        ("API_PAGE_SIZE", "fifty"),
        ("LOG_LEVEL", "LOUD"),
        ("TIME_ZONE", "Mars/Olympus_Mons"),
        ("TIME_ZONE", "Europe"),
        ("DATABASE_URL", "mysql2://user:pw@db.example/controlplane"),
        ("DATABASE_URL", "postgres://[::1/controlplane"),
        ("PROMETHEUS_MULTIPROC_DIR", "/nonexistent/metrics"),
        ("SITE_URL", "http://[::1"),
        ("ALERT_EVENT_LEASE_SECONDS", "soon"),
        ("ALERT_EVENT_LEASE_SECONDS", "0"),
        ("PAGING_LEASE_SECONDS", "0"),
        ("ALERT_EVENT_NUDGE", "sometimes"),
        ("ALERT_EVENT_CONSUMERS", "paging"),
        ("ALERT_EVENT_CONSUMERS", "paging=not a path"),
        ("ALERT_EVENT_CONSUMERS", "paging=no_such_package.handle"),
    ],
)
def test_malformed_value_stops_the_start_naming_the_variable(name, value):
    result = start(**{name: value})

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert name in result.stderr.splitlines()[-1]
    assert "Traceback" not in result.stderr  # one clear line, not a stack


def test_database_url_password_is_not_echoed():
    result = start(DATABASE_URL="mysql2://user:hunter2-secret@db.example/controlplane")

    assert result.returncode != 0
    assert "DATABASE_URL" in result.stderr.splitlines()[-1]
    assert "hunter2-secret" not in result.stderr


def test_time_zone_is_checked(monkeypatch):
    monkeypatch.setenv("TIME_ZONE_T", "Europe/Paris")
    assert env.time_zone("TIME_ZONE_T", "UTC") == "Europe/Paris"
    monkeypatch.setenv("TIME_ZONE_T", "")
    assert env.time_zone("TIME_ZONE_T", "UTC") == "UTC"
    for bad in ("Nowhere/City", "../etc/passwd", "/etc/localtime", "Europe"):
        monkeypatch.setenv("TIME_ZONE_T", bad)
        with pytest.raises(ImproperlyConfigured, match="TIME_ZONE_T"):
            env.time_zone("TIME_ZONE_T", "UTC")


def test_database_url_takes_postgresql_and_sqlite_only(monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL_T", "postgres://u:p@127.0.0.1:5432/db")
    assert env.database("DATABASE_URL_T", tmp_path / "x")["ENGINE"].endswith("postgresql")
    monkeypatch.setenv("DATABASE_URL_T", f"sqlite:///{tmp_path}/db.sqlite3")
    assert env.database("DATABASE_URL_T", tmp_path / "x")["ENGINE"].endswith("sqlite3")
    for bad in ("mysql://u:p@h/db", "postgis://u:p@h/db", "oracle://u:p@h/db", "h/db"):
        monkeypatch.setenv("DATABASE_URL_T", bad)
        with pytest.raises(ImproperlyConfigured, match="DATABASE_URL_T must start with"):
            env.database("DATABASE_URL_T", tmp_path / "x")


def test_multiprocess_directory_must_exist_and_be_a_directory(monkeypatch, tmp_path):
    monkeypatch.delenv("MULTIPROC_T", raising=False)
    assert env.directory("MULTIPROC_T") == ""
    monkeypatch.setenv("MULTIPROC_T", str(tmp_path))
    assert env.directory("MULTIPROC_T") == str(tmp_path)
    (tmp_path / "file").write_text("")
    for bad in (tmp_path / "missing", tmp_path / "file"):
        monkeypatch.setenv("MULTIPROC_T", str(bad))
        with pytest.raises(ImproperlyConfigured, match="MULTIPROC_T must be an existing directory"):
            env.directory("MULTIPROC_T")


def test_well_formed_time_zone_and_multiprocess_directory_start(tmp_path):
    result = start(TIME_ZONE="Europe/Paris", PROMETHEUS_MULTIPROC_DIR=str(tmp_path))

    assert result.returncode == 0, result.stderr


def test_secret_key_is_required_without_debug():
    result = start(SECRET_KEY="", DEBUG="false")

    assert result.returncode != 0
    assert "SECRET_KEY is required" in result.stderr


def test_well_formed_environment_starts():
    result = start(
        DEBUG="false",
        CELERY_BROKER_URL="redis://127.0.0.1:6379/0",
        TRACE_URL_TEMPLATE="https://grafana.example/explore?traceId={trace_id}",
        EMAIL_URL="smtp+tls://user:pw@mail.example:587",
    )
    assert result.returncode == 0, result.stderr


def test_email_url_is_parsed():
    os.environ["EMAIL_URL_T"] = "smtps://alert%40example.com:s3cret@mail.example:465"
    try:
        config = env.email("EMAIL_URL_T")
    finally:
        del os.environ["EMAIL_URL_T"]
    assert config["EMAIL_HOST"] == "mail.example"
    assert config["EMAIL_PORT"] == 465
    assert config["EMAIL_USE_SSL"] is True


def test_generated_secret_key_is_kept_between_starts(tmp_path, monkeypatch):
    monkeypatch.delenv("SECRET_KEY_T", raising=False)
    first = env.secret_key("SECRET_KEY_T", debug=True, generated_file=tmp_path / "key")
    second = env.secret_key("SECRET_KEY_T", debug=True, generated_file=tmp_path / "key")

    assert first == second
    assert len(first) >= 50


def test_short_secret_key_is_refused(monkeypatch):
    monkeypatch.setenv("SECRET_KEY_T", "short")
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY_T"):
        env.secret_key("SECRET_KEY_T", debug=False, generated_file=None)
