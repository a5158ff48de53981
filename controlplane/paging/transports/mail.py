"""Email, through Django's email backend: the console backend in the demo, SMTP in
production (EMAIL_URL), whatever EMAIL_BACKEND names in between.

(Named `mail`, not `email`, so that no reader confuses it with the standard library.)
"""

from __future__ import annotations

import logging
import os
import smtplib
import socket
import ssl
import sys

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.backends import console

from controlplane.paging.channels import EmailConfig
from controlplane.paging.payloads import EmailContent
from controlplane.paging.transports.base import SEND_TIMEOUT, Delivered, GiveUp, Outcome, Retry

logger = logging.getLogger(__name__)

# What each refusal was a refusal of, as the reasons say it.
_REFUSED = (
    (smtplib.SMTPSenderRefused, "the sender address"),
    (smtplib.SMTPDataError, "the message"),
    (smtplib.SMTPConnectError, "the connection"),
    (smtplib.SMTPHeloError, "our greeting"),
    (smtplib.SMTPAuthenticationError, "our login (EMAIL_HOST_USER)"),
)


class ConsoleBackend(console.EmailBackend):
    """EMAIL_URL=console: (the demo's): Django's console backend, writing to the
    process's own standard output. A Celery worker replaces sys.stdout with a logger
    (worker_redirect_stdouts), which would cut each email into log records of escaped
    text; this way the email prints as it would be sent, in the worker's terminal."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("stream", sys.__stdout__ or sys.stdout)
        super().__init__(*args, **kwargs)


class EmailTransport:
    def __init__(self, *, timeout: float | None = None, from_email: str | None = None) -> None:
        # None: EMAIL_TIMEOUT when set, else SEND_TIMEOUT; never the backend's own None,
        # which lets a silent SMTP server hold a worker forever.
        self.timeout = timeout
        self.from_email = from_email

    def deliver(self, config: EmailConfig, message: EmailContent) -> Outcome:
        """Send `message` (payloads.email_message or email_bundle) to the channel's
        addresses: one email, text with an HTML alternative, with the message's headers
        (X-Trace-Id among them).

        A broken EMAIL_* setting (an unknown backend, TLS and SSL both on) raises: it is
        the deployment's bug, the same for every message, and no reason to mark this one
        dead. Each delivery opens its own connection; the timeout bounds each exchange
        with the server, not the whole conversation.
        """
        if not isinstance(config, EmailConfig) or not isinstance(message, EmailContent):
            raise TypeError("an email delivery takes an EmailConfig and an EmailContent")
        timeout = self.timeout or getattr(settings, "EMAIL_TIMEOUT", None) or SEND_TIMEOUT
        connection = get_connection(fail_silently=False, timeout=timeout)
        email = EmailMultiAlternatives(
            subject=message.subject,
            body=message.text,
            from_email=self.from_email or settings.DEFAULT_FROM_EMAIL,
            to=list(config.to),
            headers=dict(message.headers),
            connection=connection,
        )
        email.attach_alternative(message.html, "text/html")
        try:
            sent = email.send()
        except Exception as error:
            return smtp_outcome(error, timeout)
        if sent != 1:
            return GiveUp("the email backend sent nothing: the message has no recipient")
        return Delivered(None)


def smtp_outcome(error: BaseException, timeout: float) -> Retry | GiveUp:
    """What a failure to send means (SMTP's own rule, RFC 5321 4.2.1): a 4yz reply is
    transient and a 5yz permanent; a connection that fails, times out or drops is
    worth another try; a server and settings that do not agree are not."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = sorted({code for code, _ in error.recipients.values()})
        listed = ", ".join(str(code) for code in codes)
        # A 4yz at RCPT is mostly greylisting: the same message is taken a little later.
        if any(400 <= code < 500 for code in codes):
            return Retry(f"the SMTP server deferred every recipient (SMTP {listed})")
        return GiveUp(f"the SMTP server refused every recipient (SMTP {listed})")
    if isinstance(error, smtplib.SMTPResponseException):
        code = error.smtp_code
        what = next((name for kind, name in _REFUSED if isinstance(error, kind)), "the message")
        if 500 <= code < 600:
            return GiveUp(f"the SMTP server refused {what} (SMTP {code})")
        return Retry(f"the SMTP server deferred {what} (SMTP {code})")
    if isinstance(error, smtplib.SMTPServerDisconnected):
        # smtplib reports a reply that timed out as a disconnection; the timeout is
        # what the reader of the reason wants to know.
        if isinstance(error.__context__, TimeoutError):
            return Retry(f"the SMTP server did not answer within {timeout:g} s")
        return Retry("the SMTP server closed the connection")
    if isinstance(error, smtplib.SMTPNotSupportedError):
        return GiveUp("the SMTP server lacks what the EMAIL_* settings ask of it (STARTTLS, AUTH)")
    if isinstance(error, smtplib.SMTPException):
        # smtplib's own complaints, e.g. "no suitable authentication method found".
        return GiveUp(f"the SMTP server and the EMAIL_* settings disagree ({type(error).__name__})")
    if isinstance(error, TimeoutError):
        return Retry(f"the SMTP server did not answer within {timeout:g} s")
    if isinstance(error, socket.gaierror):
        return Retry("the SMTP server's host name does not resolve")
    if isinstance(error, ssl.SSLError):
        return Retry(f"TLS with the SMTP server failed ({error.reason or type(error).__name__})")
    if isinstance(error, OSError):
        cause = os.strerror(error.errno) if error.errno else type(error).__name__
        return Retry(f"the SMTP server is unreachable: {cause}")
    if isinstance(error, ValueError | UnicodeError):
        # Django's BadHeaderError and its kin: this message cannot be written out.
        return GiveUp(f"the message cannot be written as an email ({type(error).__name__})")
    # A custom backend's own failure: unknown, so worth the bounded retries, and logged
    # (its type only: its text may quote what the server said).
    logger.warning("email backend failed with %s", type(error).__name__)
    return Retry(f"the email backend failed ({type(error).__name__})")
