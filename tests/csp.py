"""Reading a Content-Security-Policy header, for tests that check what it allows."""

from __future__ import annotations


def directives(policy: str) -> dict[str, list[str]]:
    """{'img-src': ["'self'", 'data:'], ...} from "img-src 'self' data:; ..."."""
    found: dict[str, list[str]] = {}
    for part in policy.split(";"):
        name, *sources = part.split()
        found[name] = sources
    return found
