"""The audit context: who and what a piece of work is done for.

Request, user and organisation ids live in one context variable, so they follow
the code through threads started with ``contextvars.copy_context`` and through
Celery tasks (see ``observability.celery``), and never leak between requests.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, fields, replace

MAX_REQUEST_ID_LENGTH = 128
_REQUEST_ID = re.compile(rf"[A-Za-z0-9._:-]{{1,{MAX_REQUEST_ID_LENGTH}}}")


@dataclass(frozen=True)
class AuditContext:
    request_id: str | None = None
    user_id: str | None = None
    organization_id: str | None = None

    def as_dict(self) -> dict[str, str]:
        """The ids that are set, by field name."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name)}


# Our own generator: code that seeds the global one (a test, a simulation) must not
# make request ids repeat. Reseeded in every forked child, so gunicorn's workers do
# not share a sequence.
_generator = random.Random()
os.register_at_fork(after_in_child=_generator.seed)
_random_bits = _generator.getrandbits

FIELDS = tuple(f.name for f in fields(AuditContext))

_EMPTY = AuditContext()
_current: ContextVar[AuditContext] = ContextVar("observability_audit_context", default=_EMPTY)


def current() -> AuditContext:
    return _current.get()


def _coerced(ids: dict[str, object]) -> dict[str, str | None]:
    unknown = set(ids) - set(FIELDS)
    if unknown:
        raise TypeError(f"unknown audit ids: {', '.join(sorted(unknown))}")
    # Primary keys arrive as ints or UUIDs; logs and span attributes want strings.
    return {key: None if value is None else str(value) for key, value in ids.items()}


def bind(**ids: object) -> AuditContext:
    """Set some ids for the rest of the current context; the others keep their values."""
    updated = replace(current(), **_coerced(ids))
    _current.set(updated)
    return updated


@contextmanager
def scope(**ids: object) -> Iterator[AuditContext]:
    """Set ids for the duration of a block, then restore whatever was there before.

    Ids bound inside the block (``bind``) are dropped at its end too.
    """
    token = _current.set(replace(current(), **_coerced(ids)))
    try:
        yield _current.get()
    finally:
        _current.reset(token)


def begin(ids: AuditContext) -> Token[AuditContext]:
    """Make `ids` the whole audit context until ``end(token)``.

    ``scope()`` without its generator, for the request middleware, which pays for
    every microsecond on every request.
    """
    return _current.set(ids)


def end(token: Token[AuditContext]) -> None:
    """Restore what was there before the ``begin()`` that returned `token`."""
    _current.reset(token)


def clear() -> None:
    _current.set(_EMPTY)


def valid_request_id(value: str | None) -> bool:
    """A request id we are willing to echo: short, and safe in headers and logs."""
    return bool(value) and _REQUEST_ID.fullmatch(value) is not None


def new_request_id() -> str:
    """32 random hex digits.

    A request id must be unique, not unguessable (it is echoed to the caller and
    logged), so it comes from a Mersenne Twister seeded from the system, as
    OpenTelemetry's trace ids do, rather than from a system call per request.
    """
    return f"{_random_bits(128):032x}"
