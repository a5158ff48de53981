"""Receivers on loopback for paging tests (tests/receivers.py), started and stopped per
test, with the outbound guard told that loopback is allowed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.receivers import PagerDutyReceiver, SlackReceiver, SmtpReceiver, WebhookReceiver

# Tests reach their receivers on loopback, which the guard refuses unless allowed.
LOOPBACK = ["127.0.0.0/8", "::1/128"]


@pytest.fixture
def loopback_allowed(settings):
    """ALLOWED_PRIVATE_NETWORKS set to loopback (a test may set it back to [])."""
    settings.ALLOWED_PRIVATE_NETWORKS = LOOPBACK
    return settings


@pytest.fixture
def slack_receiver(loopback_allowed) -> Iterator[SlackReceiver]:
    receiver = SlackReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def pagerduty_receiver(loopback_allowed) -> Iterator[PagerDutyReceiver]:
    receiver = PagerDutyReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def webhook_receiver(loopback_allowed) -> Iterator[WebhookReceiver]:
    """A webhook receiver checking no signature until the test sets its `secret`."""
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def smtp_receiver() -> Iterator[SmtpReceiver]:
    receiver = SmtpReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def email_to_receiver(settings, smtp_receiver) -> SmtpReceiver:
    """Django's email goes by SMTP to the SMTP receiver (pytest-django's default is the
    in-memory backend, which would test nothing of the wire)."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = smtp_receiver.host
    settings.EMAIL_PORT = smtp_receiver.port
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    settings.DEFAULT_FROM_EMAIL = "controlplane@example.com"
    return smtp_receiver
