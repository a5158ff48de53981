"""Content-Security-Policy and HSTS on every response (controlplane.middleware)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured

from controlplane import environment as env
from controlplane.catalog.models import Role
from controlplane.middleware import content_security_policy, strict_transport_security
from runbooks.models import Runbook, Via
from tests.csp import directives

TEMPLATES = Path(django_settings.BASE_DIR) / "templates"
TRACKER = "https://tracker.example/pixel.png"


def policy_of(response) -> dict[str, list[str]]:
    return directives(response["Content-Security-Policy"])


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path", ["/accounts/login/", "/admin/login/", "/runbooks/", "/api/v1/services/", "/nowhere/"]
)
def test_every_response_carries_the_strict_policy(client, path):
    policy = policy_of(client.get(path))

    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"]  # no inline script, no eval
    assert policy["style-src"] == ["'self'"]  # no <style> elements
    assert policy["img-src"] == ["'self'", "data:"]
    assert policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["form-action"] == ["'self'"]


def test_the_policy_names_the_configured_image_hosts_and_no_other():
    hosts = ["https://images.example.com", "https://*.cdn.example"]

    policy = directives(content_security_policy(hosts))

    assert policy["img-src"] == ["'self'", "data:", *hosts]
    assert policy["script-src"] == ["'self'"]


@pytest.mark.django_db
@pytest.mark.parametrize("img_hosts", [[], ["https://images.example.com"]])
def test_a_runbook_page_forbids_a_tracking_pixel_from_another_host(
    client, settings, org, member, img_hosts
):
    # The sanitiser keeps remote images (runbooks may show diagrams); the page's
    # policy is what keeps the reader's browser from asking their host.
    settings.CSP_IMG_HOSTS = img_hosts
    runbook = Runbook(
        organization=org, slug="tracked", title="Tracked", summary="s", owner="o",
        body=f"# Tracked\n\n![x]({TRACKER})\n",
    )  # fmt: skip
    runbook.save_change(via=Via.ADMIN)
    client.force_login(member(org, Role.VIEWER))

    response = client.get(runbook.get_absolute_url())

    assert TRACKER in response.content.decode()
    sources = policy_of(response)["img-src"]
    assert sources == ["'self'", "data:", *img_hosts]
    assert not any("tracker.example" in source or source in {"*", "https:"} for source in sources)


def test_a_view_with_its_own_policy_keeps_it(client):
    # ReDoc's page sets its own (the site's, plus what ReDoc needs).
    policy = policy_of(client.get("/api/v1/redoc/"))

    assert policy["style-src"] == ["'self'", "'unsafe-inline'"]
    assert policy["script-src"] == ["'self'"]


@pytest.mark.parametrize("path", sorted(TEMPLATES.rglob("*.html")), ids=str)
def test_our_templates_have_no_inline_script_or_style_element(path):
    # Comments may talk about <style>; the markup may not hold one.
    text = re.sub(r"{% comment %}.*?{% endcomment %}|{#.*?#}", "", path.read_text(), flags=re.S)
    scripts = re.findall(r"<script\b[^>]*>", text)

    assert all(" src=" in tag for tag in scripts), scripts
    assert "<style" not in text
    assert not re.search(r"\son[a-z]+\s*=", text), "inline event handler"


# HSTS


@pytest.mark.django_db
def test_hsts_is_sent_when_configured_even_over_plain_http(client, settings):
    # Browsers ignore it over HTTP (RFC 6797); behind a proxy that ends TLS, every
    # request looks like plain HTTP here.
    settings.SECURE_HSTS_SECONDS = 31_536_000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = False

    assert client.get("/accounts/login/")["Strict-Transport-Security"] == "max-age=31536000"


@pytest.mark.django_db
def test_no_hsts_when_off(client, settings):
    settings.SECURE_HSTS_SECONDS = 0

    assert "Strict-Transport-Security" not in client.get("/accounts/login/")
    assert "Strict-Transport-Security" not in client.get("/accounts/login/", secure=True)


def test_hsts_value():
    assert strict_transport_security(0, True) is None
    assert strict_transport_security(600, False) == "max-age=600"
    assert strict_transport_security(600, True) == "max-age=600; includeSubDomains"


def settings_value(name: str, **variables: str) -> str:
    """A setting as a fresh process reads it from this environment."""
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DEBUG", "SESSION_COOKIE_SECURE", "SECURE_HSTS_SECONDS"}
    }
    base.update({"SECRET_KEY": "x" * 40, "DJANGO_SETTINGS_MODULE": "controlplane.settings"})
    base.update(variables)
    code = f"from django.conf import settings; print(settings.{name})"
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=base,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=django_settings.BASE_DIR,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.parametrize(
    ("variables", "seconds"),
    [
        ({}, "31536000"),  # DEBUG off: cookies HTTPS-only, so the site is HTTPS
        ({"SESSION_COOKIE_SECURE": "false"}, "0"),
        ({"DEBUG": "true"}, "0"),
        ({"SESSION_COOKIE_SECURE": "false", "SECURE_HSTS_SECONDS": "600"}, "600"),
        ({"SECURE_HSTS_SECONDS": "0"}, "0"),
    ],
)
def test_hsts_defaults_to_a_year_when_cookies_are_https_only(variables, seconds):
    assert settings_value("SECURE_HSTS_SECONDS", **variables) == seconds


# The environment readers


def test_image_hosts_are_read_as_origins(monkeypatch):
    monkeypatch.setenv("CSP_IMG_HOSTS", "https://images.example.com/, https://*.cdn.example:8443")

    assert env.csp_origins("CSP_IMG_HOSTS") == [
        "https://images.example.com",
        "https://*.cdn.example:8443",
    ]


@pytest.mark.parametrize(
    "value",
    [
        "*",
        "https:",
        "images.example.com",
        "https://images.example.com/path",
        "https://images.example.com; script-src *",
        "'unsafe-inline'",
        "https://images.example.com 'unsafe-eval'",
        "javascript://x",
        "https://*",
    ],
)
def test_image_hosts_that_are_no_plain_origin_stop_the_start(monkeypatch, value):
    monkeypatch.setenv("CSP_IMG_HOSTS", value)

    with pytest.raises(ImproperlyConfigured, match="CSP_IMG_HOSTS"):
        env.csp_origins("CSP_IMG_HOSTS")


def test_a_bearer_token_is_checked_and_never_echoed(monkeypatch):
    monkeypatch.setenv("METRICS_TOKEN", "a" * 24)
    assert env.bearer_token("METRICS_TOKEN") == "a" * 24
    monkeypatch.setenv("METRICS_TOKEN", "")
    assert env.bearer_token("METRICS_TOKEN") == ""

    for bad in ("short-secret", "has a space in the middle of it", 'quote"quote"quote"quote'):
        monkeypatch.setenv("METRICS_TOKEN", bad)
        with pytest.raises(ImproperlyConfigured, match="METRICS_TOKEN") as raised:
            env.bearer_token("METRICS_TOKEN")
        assert bad not in str(raised.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CSP_IMG_HOSTS", "https://images.example.com; script-src *"),
        ("METRICS_TOKEN", "too-short"),
        ("LOGIN_FAILURE_LIMIT", "0"),
        ("LOGIN_COOLOFF_MINUTES", "soon"),
        ("SECURE_HSTS_SECONDS", "-1"),
        ("SECURE_HSTS_INCLUDE_SUBDOMAINS", "perhaps"),
    ],
)
def test_a_malformed_value_stops_the_start_naming_the_variable(name, value):
    base = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "DEBUG"}}
    base.update({"SECRET_KEY": "x" * 40, name: value})

    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        env=base,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=django_settings.BASE_DIR,
    )

    assert result.returncode != 0
    assert name in result.stderr.splitlines()[-1]
    assert "Traceback" not in result.stderr
    if name == "METRICS_TOKEN":
        assert value not in result.stderr
