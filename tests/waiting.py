"""Waiting for a process to serve: the one helper every test and bench uses for it.

A process that is starting answers late, refuses, resets or times out depending on
how far it got and how busy the machine is; all of those mean "not yet", never
"broken". So a wait retries on every transport error and on every answer that is
not ready, until a generous deadline, and fails at once (with the log's tail) only
when the process it waits for has exited. When it gives up it names what it waited
for and the last error seen.

    process = subprocess.Popen([...], stderr=log_path.open("wb"))
    until_serving(f"{url}/ok/", what="gunicorn", process=process, log=log_path)

The deadline is `DEADLINE` seconds (60; the environment variable
`TEST_WAIT_SECONDS` overrides it, e.g. on a very slow machine). Requests to a
server under test should use `REQUEST_TIMEOUT`, for the same reason.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

import requests

T = TypeVar("T")

DEADLINE = float(os.environ.get("TEST_WAIT_SECONDS") or 60)
"""Seconds a process gets to come up: generous, a loaded 2-core machine needs it."""

REQUEST_TIMEOUT = 30.0
"""Seconds one request to a server under test may take before it counts as failed."""

_FIRST_PAUSE, _LONGEST_PAUSE = 0.05, 0.5
_TAIL_CHARACTERS = 3000


class Process(Protocol):
    """What a wait needs of a child process: subprocess.Popen and its like."""

    pid: int

    def poll(self) -> int | None: ...


class WaitTimeout(RuntimeError):
    """The deadline passed, or the process exited, before the thing was ready."""


def until(
    probe: Callable[[], T],
    *,
    what: str,
    process: Process | None = None,
    log: Path | Callable[[], str] | None = None,
    within: float | None = None,
    retry_on: tuple[type[BaseException], ...] = (requests.RequestException, OSError),
) -> T:
    """Call `probe` until it returns a true value, and return that value.

    A falsy result or an exception of a `retry_on` type means "not yet"; the last
    one is quoted when the wait gives up after `within` seconds (`DEADLINE` by
    default). `what` names the thing waited for ("gunicorn at http://…/ok/").
    """
    within = DEADLINE if within is None else within
    deadline = time.monotonic() + within
    pause = _FIRST_PAUSE
    last = "no attempt finished"
    while True:
        status = None if process is None else process.poll()
        if status is not None:
            raise WaitTimeout(
                f"{_describe(what, process)} exited with status {status} "
                f"before it was ready (last error: {last})" + _tail(log)
            )
        try:
            result = probe()
        except retry_on as error:
            last = f"{type(error).__name__}: {error}"
        else:
            if result:
                return result
            last = f"not ready ({result!r})"
        if time.monotonic() >= deadline:
            raise WaitTimeout(
                f"{_describe(what, process)} was not ready within {within:g} s "
                f"(last error: {last})" + _tail(log)
            )
        time.sleep(min(pause, max(deadline - time.monotonic(), 0)))
        pause = min(pause * 2, _LONGEST_PAUSE)


def until_serving(
    url: str,
    *,
    what: str,
    process: Process | None = None,
    log: Path | Callable[[], str] | None = None,
    within: float | None = None,
    ready: Callable[[requests.Response], bool] = lambda response: response.ok,
) -> requests.Response:
    """GET `url` until the answer is `ready` (a 2xx by default); return that answer.

    Each attempt may take up to `REQUEST_TIMEOUT`, but never past the deadline, so
    the whole wait stays bounded by `within`.
    """
    within = DEADLINE if within is None else within
    deadline = time.monotonic() + within

    def probe() -> list[requests.Response]:
        timeout = min(REQUEST_TIMEOUT, max(deadline - time.monotonic(), 0.1))
        response = requests.get(url, timeout=timeout)
        if ready(response):
            # In a list: a Response is false when its status is 4xx or 5xx, ready or not.
            return [response]
        raise _NotReady(f"HTTP {response.status_code} {response.reason}: {response.text[:200]!r}")

    [response] = until(
        probe,
        what=f"{what} at {url}",
        process=process,
        log=log,
        within=within,
        retry_on=(requests.RequestException, _NotReady),
    )
    return response


def until_log_contains(
    path: Path, text: str, *, what: str, process: Process, within: float | None = None
) -> None:
    """Wait until the file at `path`, the log of `process`, contains `text`."""

    def probe() -> bool:
        return path.exists() and text.encode() in path.read_bytes()

    until(
        probe, what=f"{what} (to log {text!r} in {path})", process=process, log=path, within=within
    )


class _NotReady(Exception):
    """An answer came, but not the one that means ready."""


def _describe(what: str, process: Process | None) -> str:
    return what if process is None else f"{what} (pid {process.pid})"


def _tail(log: Path | Callable[[], str] | None) -> str:
    if log is None:
        return ""
    try:
        text = log() if callable(log) else log.read_text(errors="replace")
    except OSError as error:
        return f"\n(its log could not be read: {error})"
    return f"\nlast lines of its log:\n{text[-_TAIL_CHARACTERS:]}"
