"""What links to a runbook: contexts that cite runbooks register a provider here.

Alert rules and SLOs name runbooks by slug; the runbook page asks every provider
which of them cite it, without this app importing those contexts:

    from runbooks import links

    @links.register
    def alert_rules_citing(runbook, reader) -> list[links.Link]:
        return [links.Link(rule.name, rule.get_absolute_url()) for rule in ...]

`reader` is the user looking at the page: a shared runbook is cited from many
organisations, and a provider lists only what the reader may see.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import NamedTuple


class Link(NamedTuple):
    label: str
    url: str


Provider = Callable[[object, object], Iterable[Link]]

_providers: list[Provider] = []


def register(provider: Provider) -> Provider:
    """Add a provider (usable as a decorator); registering twice has no effect."""
    if provider not in _providers:
        _providers.append(provider)
    return provider


def unregister(provider: Provider) -> None:
    if provider in _providers:
        _providers.remove(provider)


def links_to(runbook, reader) -> list[Link]:
    found = []
    for provider in _providers:
        found.extend(Link(*link) for link in provider(runbook, reader))
    return found
