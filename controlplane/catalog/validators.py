import re
from collections.abc import Iterator
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError

from controlplane.catalog import outbound

NUL = "\x00"


def contains_nul(value) -> bool:
    """True when a NUL is anywhere in the value: text, or keys and items of JSON data.

    PostgreSQL refuses NUL in text and jsonb, so it must be found before a query does.
    """
    return any(NUL in text for text in _texts(value))


def contains_surrogate(value) -> bool:
    """True when a lone surrogate (U+D800 to U+DFFF) is anywhere in the value.

    JSON can spell one (\\ud800) and Python holds it, but it has no UTF-8 encoding:
    PostgreSQL (and any UTF-8 writer) refuses it, so it must be found before a query does.
    """
    return any(_SURROGATE.search(text) for text in _texts(value))


_SURROGATE = re.compile("[\ud800-\udfff]")


def _texts(value) -> Iterator[str]:
    """Every string in the value, keys of JSON objects included. The walk keeps its own
    stack: JSON from a request may nest deeper than Python recurses."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list | tuple):
            pending.extend(item)


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
