from urllib.parse import urlsplit

from django.core.exceptions import ValidationError

from controlplane.catalog import outbound

NUL = "\x00"


def contains_nul(value) -> bool:
    """True when a NUL is anywhere in the value: text, or keys and items of JSON data.

    PostgreSQL refuses NUL in text and jsonb, so it must be found before a query does.
    The walk keeps its own stack: JSON from a request may nest deeper than Python recurses.
    """
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if NUL in item:
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list | tuple):
            pending.extend(item)
    return False


def validate_http_url(value: str) -> None:
    """An http(s) URL. Unlike Django's URLValidator, single-label hosts such as
    `prometheus:9090` (Kubernetes services, Compose hosts) are fine."""
    if any(ch.isspace() for ch in value):
        raise ValidationError("A URL cannot contain spaces or line breaks.")
    if NUL in value:
        raise ValidationError("A URL cannot contain a NUL character.")
    try:
        parts = urlsplit(value)
    except ValueError as error:
        # urlsplit refuses an unbalanced or invalid IPv6 bracket, as in http://[::1
        raise ValidationError(
            f"This is not a valid URL ({error}); an IPv6 host goes in brackets, "
            "as in http://[::1]:9090."
        ) from None
    if parts.scheme not in {"http", "https"}:
        raise ValidationError("The URL must start with http:// or https://.")
    if not parts.hostname:
        raise ValidationError("The URL has no host name.")
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 1 <= port <= 65535:
        raise ValidationError("The URL's port is not a number from 1 to 65535.")
    if parts.username is not None or parts.password is not None:
        raise ValidationError(
            "Put credentials in the auth header, not in the URL: URLs are shown to readers."
        )
    try:
        parts.hostname.encode("idna")
    except UnicodeError:
        raise ValidationError(
            "The host name is not valid (each part at most 63 characters, "
            "letters, digits and hyphens)."
        ) from None


def validate_source_address(value: str) -> None:
    """Refuse a source URL whose host is an address the outbound guard would refuse,
    with the guard's own message. A host name is judged when connecting, on what DNS
    answers then; a URL that is not valid is left to `validate_http_url`."""
    try:
        host = urlsplit(value).hostname
    except ValueError:
        return
    if not host:
        return
    try:
        outbound.check_literal(host, outbound.SOURCES)
    except outbound.Refused as refused:
        raise ValidationError(f"{refused.message}.") from None


def validate_header_value(value: str) -> None:
    """An HTTP header value: visible ASCII and spaces, as it goes on the wire."""
    if value and not all(" " <= ch <= "~" for ch in value):
        raise ValidationError("A header value can only hold visible ASCII characters and spaces.")
