"""Fetching a calendar feed: through the outbound guard, conditional, bounded.

The guard (catalog/outbound.py, WEBHOOKS policy: calendars live on the internet)
refuses private addresses when connecting, never follows a redirect and bounds time
and size. On top of it: `ETag` / `If-Modified-Since`, so an unchanged feed costs its
server a 304, and the closed `FeedError` set, whose messages are ours.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from controlplane.catalog import outbound
from controlplane.oncall.calendars import HtmlPage
from controlplane.oncall.models import MOST_ICS_BYTES

# Seconds to connect and for each read; the guard cuts a whole exchange at twice this.
TIMEOUT = 10.0


class FeedError(Exception):
    """The feed gave nothing usable. `message` is ours, never the other side's text."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Fetched:
    """A feed's answer: its body, or None when unchanged since the validators sent."""

    body: bytes | None
    etag: str
    last_modified: str

    @property
    def unchanged(self) -> bool:
        return self.body is None


def fetch(url: str, etag: str = "", last_modified: str = "", timeout: float = TIMEOUT) -> Fetched:
    """GET the feed, conditionally when validators are known. Raises FeedError, or
    calendars.HtmlPage when the server says the answer is a web page."""
    headers = {"Accept": "text/calendar, */*;q=0.1", "User-Agent": "controlplane-oncall"}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    try:
        answer = _client().request("GET", url, timeout=timeout, headers=headers)
    except outbound.TooLarge:
        raise FeedError(
            f"is larger than {MOST_ICS_BYTES // (1024 * 1024)} MiB, the most that is read"
        ) from None
    except outbound.OutboundError as error:
        raise FeedError(error.message) from None
    if answer.status == 304:
        # A 304 may repeat the validators or leave them out: keep ours then.
        return Fetched(
            None,
            answer.headers.get("ETag", etag)[:300],
            answer.headers.get("Last-Modified", last_modified)[:100],
        )
    if answer.status != 200:
        raise FeedError(f"answered HTTP {answer.status}")
    if answer.headers.get("Content-Type", "").split(";")[0].strip().lower() == "text/html":
        raise HtmlPage()
    return Fetched(
        answer.body,
        answer.headers.get("ETag", "")[:300],
        answer.headers.get("Last-Modified", "")[:100],
    )


# One guarded client per process, made again after a fork (its pool must not be
# shared with a prefork child).
_shared: tuple[int, outbound.Outbound] | None = None


def _client() -> outbound.Outbound:
    global _shared
    if _shared is None or _shared[0] != os.getpid():
        _shared = (os.getpid(), outbound.Outbound(outbound.WEBHOOKS, max_bytes=MOST_ICS_BYTES))
    return _shared[1]
