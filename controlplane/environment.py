"""Reading settings from environment variables.

Every reader raises ImproperlyConfigured naming the variable, so a malformed value
stops the process at start with a message an operator can act on.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import zoneinfo
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off", ""}

# The database backends this project is built and tested for (psycopg 3 and SQLite).
DATABASE_SCHEMES = ("postgres", "postgresql", "pgsql", "sqlite")
DATABASE_ENGINES = ("django.db.backends.postgresql", "django.db.backends.sqlite3")


def string(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def boolean(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be one of true/false/1/0/yes/no, got {raw!r}")


def integer(name: str, default: int, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
    return value


def named_paths(name: str) -> dict[str, str]:
    """'a=pkg.mod.func,b=pkg.other.func' as {name: dotted path}; imported by the caller."""
    found: dict[str, str] = {}
    for item in string_list(name, []):
        label, sep, path = item.partition("=")
        label, path = label.strip(), path.strip()
        if (
            not sep
            or not label
            or not path
            or not all(part.isidentifier() for part in path.split("."))
        ):
            raise ImproperlyConfigured(
                f"{name} must be name=dotted.path pairs separated by commas, got {item!r}"
            )
        found[label] = path
    return found


def string_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def retention_days(name: str) -> dict[str, int]:
    """'audit_events=730,notifications=30': days kept per retention category, each
    checked against controlplane/audit/policy.py (a pure module, safe to import here)."""
    from controlplane.audit import policy

    found: dict[str, int] = {}
    for item in string_list(name, []):
        category, sep, raw = (part.strip() for part in item.partition("="))
        if not sep or not category:
            raise ImproperlyConfigured(
                f"{name} must be category=days pairs separated by commas, such as "
                f"audit_events=730,notifications=30, got {item!r}"
            )
        if category in found:
            raise ImproperlyConfigured(f"{name} names {category} twice")
        if not re.fullmatch(r"[+-]?[0-9]+", raw):
            raise ImproperlyConfigured(
                f"{name}: the retention of {category} must be a whole number of days, got {raw!r}"
            )
        try:
            found[category] = policy.check_days(category, int(raw))
        except policy.PolicyError as error:
            raise ImproperlyConfigured(f"{name}: {error}") from None
    return found


def networks(name: str) -> list[str]:
    """'10.0.0.0/8, ::1/128' as normalised CIDRs; a bare address is a network of one."""
    found = []
    for item in string_list(name, []):
        try:
            found.append(str(ipaddress.ip_network(item)))
            continue
        except ValueError:
            pass
        try:
            # 10.1.2.3/8: bits set past the prefix, most likely a typo. Say what we
            # would have read rather than guess.
            network = ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ImproperlyConfigured(
                f"{name} must be networks such as 10.0.0.0/8 or fd00::/8, separated by "
                f"commas, got {item!r}"
            ) from None
        raise ImproperlyConfigured(
            f"{name}: {item!r} has bits set past its prefix; did you mean {network}?"
        )
    return found


def _split(name: str, raw: str) -> SplitResult:
    try:
        return urlsplit(raw)
    except ValueError as error:
        # e.g. an unbalanced IPv6 bracket, as in http://[::1
        raise ImproperlyConfigured(f"{name} is not a valid URL: {error}") from None


def url(name: str, default: str = "", schemes: tuple[str, ...] = ("http", "https")) -> str:
    raw = string(name, default)
    if not raw:
        return ""
    parts = _split(name, raw)
    if parts.scheme not in schemes or not parts.netloc:
        allowed = ", ".join(f"{s}://" for s in schemes)
        raise ImproperlyConfigured(f"{name} must be a URL starting with {allowed}, got {raw!r}")
    return raw


def database(name: str, default_sqlite: Path) -> dict:
    raw = string(name)
    if not raw:
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": str(default_sqlite)}
    # Never echo the URL itself: it usually carries the password.
    scheme = _split(name, raw).scheme
    allowed = ", ".join(f"{s}://" for s in DATABASE_SCHEMES)
    if scheme not in DATABASE_SCHEMES:
        raise ImproperlyConfigured(f"{name} must start with {allowed}, got {scheme or '?'}://…")
    try:
        config = dj_database_url.parse(raw, conn_max_age=60)
    except (ValueError, KeyError) as error:
        raise ImproperlyConfigured(
            f"{name} is not a database URL we understand ({type(error).__name__})"
        ) from None
    if config.get("ENGINE") not in DATABASE_ENGINES:
        raise ImproperlyConfigured(f"{name} must start with {allowed}, got {scheme}://…")
    return config


def broker(name: str, default: str) -> str:
    raw = string(name, default)
    scheme = _split(name, raw).scheme
    if scheme not in {"redis", "rediss", "amqp", "amqps", "pyamqp", "filesystem", "memory"}:
        raise ImproperlyConfigured(
            f"{name} must be a redis://, amqp:// or filesystem:// URL, got {raw!r}"
        )
    return raw


def trace_url_template(name: str) -> str:
    raw = string(name)
    if raw and "{trace_id}" not in raw:
        raise ImproperlyConfigured(f"{name} must contain the placeholder {{trace_id}}, got {raw!r}")
    if raw:
        url(name, schemes=("http", "https"))
    return raw


def secret_key(name: str, debug: bool, generated_file: Path) -> str:
    """The key from the environment; in DEBUG a generated one kept under var/."""
    raw = string(name)
    if raw:
        if len(raw) < 32:
            raise ImproperlyConfigured(f"{name} must be at least 32 characters long")
        return raw
    if not debug:
        raise ImproperlyConfigured(f"{name} is required when DEBUG is off")
    if generated_file.exists():
        return generated_file.read_text().strip()
    generated_file.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    generated_file.write_text(key)
    generated_file.chmod(0o600)
    return key


def secret(name: str, minimum_length: int = 32) -> str:
    """A secret of our own, or "" when unset; its value never appears in an error."""
    raw = string(name)
    if raw and len(raw) < minimum_length:
        raise ImproperlyConfigured(f"{name} must be at least {minimum_length} characters long")
    return raw


def email(name: str) -> dict:
    """EMAIL_URL: smtp://user:pass@host:port, smtp+tls://..., smtps://..., console:, locmem:."""
    raw = string(name)
    if not raw or raw.startswith("console"):
        # Django's console backend, printing to the real stdout even in a Celery worker.
        return {"EMAIL_BACKEND": "controlplane.paging.transports.mail.ConsoleBackend"}
    if raw.startswith("locmem"):
        return {"EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend"}
    parts = _split(name, raw)
    if parts.scheme not in {"smtp", "smtp+tls", "smtps"} or not parts.hostname:
        raise ImproperlyConfigured(
            f"{name} must look like smtp://user:password@host:port (or smtp+tls://, smtps://, "
            f"console:), got {parts.scheme}://…"
        )
    try:
        port = parts.port
    except ValueError:
        raise ImproperlyConfigured(f"{name} has an invalid port") from None
    return {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": parts.hostname,
        "EMAIL_PORT": port or (465 if parts.scheme == "smtps" else 25),
        "EMAIL_HOST_USER": parts.username or "",
        "EMAIL_HOST_PASSWORD": parts.password or "",
        "EMAIL_USE_TLS": parts.scheme == "smtp+tls",
        "EMAIL_USE_SSL": parts.scheme == "smtps",
    }


def time_zone(name: str, default: str) -> str:
    """An IANA time zone name such as Europe/Paris, checked against the tz database."""
    raw = string(name) or default
    try:
        zoneinfo.ZoneInfo(raw)
    except (KeyError, ValueError, OSError):
        # KeyError: unknown name; ValueError: not a key ("../x"); OSError: a directory.
        raise ImproperlyConfigured(
            f"{name} must be a time zone name such as UTC or Europe/Paris, got {raw!r}"
        ) from None
    return raw


def directory(name: str) -> str:
    """An existing, writable directory, or "" when the variable is unset."""
    raw = string(name)
    if not raw:
        return ""
    path = Path(raw)
    if not path.is_dir():
        raise ImproperlyConfigured(f"{name} must be an existing directory, got {raw!r}")
    if not os.access(path, os.W_OK | os.X_OK):
        raise ImproperlyConfigured(f"{name} must be a directory this process can write: {raw!r}")
    return raw


# An origin a Content-Security-Policy may name: scheme, host (optionally every
# subdomain, "*."), port. No paths, quotes, spaces or semicolons, which would let a
# value smuggle in another directive.
_CSP_ORIGIN = re.compile(
    r"https?://(\*\.)?[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::[0-9]{1,5})?"
)


def csp_origins(name: str) -> list[str]:
    """'https://img.example.com,https://*.cdn.example' as a list of CSP host sources."""
    found = []
    for item in string_list(name, []):
        origin = item.rstrip("/")
        if not _CSP_ORIGIN.fullmatch(origin):
            raise ImproperlyConfigured(
                f"{name} must be origins such as https://images.example.com or "
                f"https://*.example.com, separated by commas, got {item!r}"
            )
        found.append(origin)
    return found


# RFC 6750's b64token: what may follow "Bearer " in an Authorization header.
_BEARER_TOKEN = re.compile(r"[A-Za-z0-9._~+/-]+=*")


def bearer_token(name: str, minimum_length: int = 16) -> str:
    """A shared secret sent as 'Authorization: Bearer <token>', or "" when unset."""
    raw = string(name)
    if not raw:
        return ""
    # Never echo the value: it is a secret.
    if len(raw) < minimum_length:
        raise ImproperlyConfigured(f"{name} must be at least {minimum_length} characters long")
    if not _BEARER_TOKEN.fullmatch(raw):
        raise ImproperlyConfigured(
            f"{name} may hold only letters, digits and . _ ~ + / - (and = at the end)"
        )
    return raw
