from urllib.parse import urlsplit

from django.core.exceptions import ValidationError


def validate_http_url(value: str) -> None:
    """An http(s) URL. Unlike Django's URLValidator, single-label hosts such as
    `prometheus:9090` (Kubernetes services, Compose hosts) are fine."""
    if any(ch.isspace() for ch in value):
        raise ValidationError("A URL cannot contain spaces or line breaks.")
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"}:
        raise ValidationError("The URL must start with http:// or https://.")
    if not parts.hostname:
        raise ValidationError("The URL has no host name.")
    try:
        _ = parts.port
    except ValueError:
        raise ValidationError("The URL's port is not a number from 1 to 65535.") from None
