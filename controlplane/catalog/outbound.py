"""The one way out: HTTP requests to addresses that users typed.

Metric sources now, and webhooks, Slack, PagerDuty and calendar feeds later, send
requests to URLs a manager saved. Without a guard those URLs aim the control plane
at whatever it can reach: the cloud metadata service, an admin port on loopback, a
service that trusts the private network. Every such request goes through `Outbound`:

- The address is judged when the connection is made, on what DNS answered then, and
  the connection goes to the very address that was judged: a name that resolved to a
  public address when it was saved and to 127.0.0.1 when it is used gets nowhere.
  Host header, TLS SNI and certificate checks still use the name.
- Redirects are never followed: the next hop would escape the check, and the
  credentials sent with the request would go along.
- Time and size are bounded: connecting and each read take at most `timeout`, and
  the whole exchange at most twice that, all told (a watchdog cuts the connection of a
  sender that trickles its headers or body); each address of a name is tried for what
  is left of that time. Only the resolver's own lookup is not bounded here (the
  system's resolver settings bound it). A body past `max_bytes` (after decompression)
  is refused rather than read.

Callers get an `Answer` or one of the `OutboundError` classes, never requests or
urllib3, and no error carries text the other side sent.
"""

from __future__ import annotations

import heapq
import http.client
import ipaddress
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    DecodeError,
    HTTPError,
    LocationParseError,
    NameResolutionError,
    NewConnectionError,
    ReadTimeoutError,
)
from urllib3.util import connection

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# Big enough for a Prometheus answer of tens of thousands of series, small enough that
# a worker reading several at once stays within its memory.
MAX_ANSWER_BYTES = 8 * 1024 * 1024
_CHUNK_BYTES = 64 * 1024


def _networks(*cidrs: str) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(cidr) for cidr in cidrs)


# (what the message calls it, its networks). Order matters: the first match names the
# address, so 169.254.169.254 is "a cloud metadata address", not merely link-local.
CLOUD_METADATA = (
    "a cloud metadata address",
    # AWS, GCP, Azure and Oracle; AWS over IPv6; Alibaba Cloud.
    _networks("169.254.169.254/32", "fd00:ec2::254/128", "100.100.100.200/32"),
)
LOOPBACK = ("a loopback address", _networks("127.0.0.0/8", "::1/128"))
LINK_LOCAL = ("a link-local address", _networks("169.254.0.0/16", "fe80::/10"))
# Connecting to 0.0.0.0 or :: reaches this machine.
UNSPECIFIED = ("an unspecified address", _networks("0.0.0.0/8", "::/128"))
MULTICAST = ("a multicast address", _networks("224.0.0.0/4", "ff00::/8"))
BROADCAST = ("a broadcast address", _networks("255.255.255.255/32"))
PRIVATE = (
    "a private address",
    _networks("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"),
)


@dataclass(frozen=True)
class Policy:
    """Which networks requests must not reach, unless the setting named allows them."""

    setting: str
    refused: tuple[tuple[str, tuple[Network, ...]], ...]

    def allowed(self) -> tuple[Network, ...]:
        # Read per connection, not at import: tests and a reloaded configuration apply
        # at once. Parsing a handful of networks costs nothing next to a TCP handshake.
        return tuple(
            ipaddress.ip_network(network, strict=False)
            for network in getattr(settings, self.setting, ())
        )


# Prometheus usually lives on the private network, so sources may reach it; what no
# source should be is this machine or the cloud's metadata service.
SOURCES = Policy(
    "ALLOWED_SOURCE_NETWORKS",
    (CLOUD_METADATA, LOOPBACK, LINK_LOCAL, UNSPECIFIED, MULTICAST, BROADCAST),
)
# Webhooks, Slack, PagerDuty and calendar feeds live on the internet: a private
# address there is a mistake or an attack until an operator says otherwise.
WEBHOOKS = Policy("ALLOWED_PRIVATE_NETWORKS", (*SOURCES.refused, PRIVATE))


def refusal(address: str | Address, policy: Policy, allowed: Iterable[Network] = ()) -> str | None:
    """What makes `address` refused under `policy` (e.g. "a loopback address"), or None."""
    ip = _embedded_ipv4(ipaddress.ip_address(address))
    if any(ip in network for network in allowed):
        return None
    for kind, networks in policy.refused:
        if any(ip in network for network in networks):
            return kind
    return None


NAT64 = ipaddress.ip_network("64:ff9b::/96")
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


def _embedded_ipv4(ip: Address) -> Address:
    """The IPv4 address an IPv6 one carries, where a network would deliver it there:
    mapped (::ffff:127.0.0.1 on a dual-stack socket), NAT64 (64:ff9b::7f00:1), 6to4
    (2002:7f00:1::) and the old IPv4-compatible form (::127.0.0.1)."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return ip
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in NAT64 or (ip in IPV4_COMPATIBLE and int(ip) > 1):  # not :: nor ::1
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def numeric_addresses(host: str) -> list[str] | None:
    """The address a host written as a number stands for, or None for a host name.

    Asks the resolver itself (without DNS), so every spelling it would connect to is
    recognised: 127.1, 0x7f.0.0.1 and 2130706433 are all 127.0.0.1.
    """
    try:
        found = socket.getaddrinfo(host.strip("[]"), None, flags=socket.AI_NUMERICHOST)
    except (socket.gaierror, UnicodeError, ValueError):
        return None
    return list(dict.fromkeys(info[4][0] for info in found))


def check_literal(host: str, policy: Policy) -> None:
    """Raise Refused when `host` is an address `policy` refuses; names pass.

    For saving a URL: a name is judged when connecting, as DNS answers then.
    """
    for address in numeric_addresses(host) or ():
        kind = refusal(address, policy, policy.allowed())
        if kind is not None:
            raise Refused(host, kind, policy.setting, literal=True)


# The closed set of failures.


class OutboundError(Exception):
    """The request got no usable answer. `message` is ours, never the other side's."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Refused(OutboundError):
    """The host is, or resolves to, an address the policy refuses."""

    def __init__(self, host: str, kind: str, setting: str, literal: bool) -> None:
        verb = "is" if literal else "resolves to"
        super().__init__(f"{host} {verb} {kind}; set {setting} to allow it")
        self.host, self.kind, self.setting = host, kind, setting


class Redirected(OutboundError):
    """The answer was a redirect, which is never followed."""

    def __init__(self, status: int) -> None:
        super().__init__(f"answered with a redirect (HTTP {status}); redirects are not followed")
        self.status = status


class TooLarge(OutboundError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"answered more than {_size(limit)}, the most that is read")
        self.limit = limit


class Timeout(OutboundError):
    def __init__(self, seconds: float) -> None:
        super().__init__(f"did not answer within {seconds:g} s")
        self.seconds = seconds


class Unreachable(OutboundError):
    """No answer: refused, reset, unresolvable, TLS failed, not HTTP."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"is unreachable: {reason}")
        self.reason = reason


class Unsendable(OutboundError):
    """The request cannot be put on the wire: a bad host, header or scheme in the URL."""

    def __init__(self, what: str) -> None:
        super().__init__(f"cannot be sent as configured ({what})")
        self.what = what


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def ok(self) -> bool:
        return self.status < 400


class Outbound:
    """HTTP requests under one policy, with one pool of kept-alive connections."""

    def __init__(self, policy: Policy, max_bytes: int = MAX_ANSWER_BYTES) -> None:
        self.policy = policy
        self.max_bytes = max_bytes
        self._session = requests.Session()
        # Proxy variables and .netrc of the environment do not apply: a proxy would make
        # the connection for us, past the guard, and .netrc would add credentials.
        self._session.trust_env = False
        adapter = _GuardedAdapter(policy)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    def request(
        self,
        method: str,
        url: str,
        *,
        timeout: float,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
        json: Any = None,
        content: bytes | None = None,
    ) -> Answer:
        """`content` is the body as raw bytes, sent exactly as given (a signature over
        the body holds only for those very bytes); `data` and `json` encode for you."""
        if content is not None and (data is not None or json is not None):
            raise TypeError("give the body once: as content, data or json")
        # One deadline for the whole exchange: per-read timeouts alone let a sender that
        # trickles a header line at a time hold us for as long as it likes.
        deadline = _Deadline(TOTAL_TIMEOUTS * timeout)
        _current.deadline = deadline
        _watchdog.watch(deadline)
        try:
            body = content if content is not None else data
            answer = self._request(method, url, deadline, timeout, headers, params, body, json)
            if deadline.passed:
                # Cut mid-headers, the client reads the end of the stream as their end
                # and an empty body: an answer that is no answer.
                raise Timeout(timeout)
            return answer
        except (Unreachable, Unsendable):
            # The watchdog cut the connection: whatever broke as a result, time did it.
            if deadline.passed:
                raise Timeout(timeout) from None
            raise
        finally:
            deadline.done = True
            _current.deadline = None

    def _request(
        self,
        method: str,
        url: str,
        deadline: _Deadline,
        timeout: float,
        headers: Mapping[str, str] | None,
        params: Mapping[str, str] | None,
        data: Mapping[str, str] | bytes | None,
        json: Any,
    ) -> Answer:
        try:
            with self._session.request(
                method,
                url,
                headers=headers,
                params=params,
                data=data,
                json=json,
                timeout=timeout,
                allow_redirects=False,
                stream=True,
            ) as response:
                if response.is_redirect:
                    raise Redirected(response.status_code)
                body = self._read(response, deadline.at, timeout)
                return Answer(response.status_code, response.headers, body)
        except OutboundError:
            raise
        except requests.Timeout:
            raise Timeout(timeout) from None
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as error:
            # requests reports a timeout while reading the body as a ConnectionError.
            if any(isinstance(cause, ReadTimeoutError) for cause in _causes(error)):
                raise Timeout(timeout) from None
            raise Unreachable(_reason(error)) from None
        except ReadTimeoutError:
            raise Timeout(timeout) from None
        except (requests.exceptions.ContentDecodingError, DecodeError):
            raise Unreachable("the answer's compression is broken") from None
        except LocationParseError as error:
            raise Unsendable(type(error).__name__) from None
        except HTTPError as error:  # urllib3's, while reading the body
            raise Unreachable(_reason(error)) from None
        except (requests.RequestException, UnicodeError, ValueError) as error:
            # A host, header or scheme that cannot go on the wire (saved by an older
            # release, or through the ORM).
            raise Unsendable(type(error).__name__) from None

    def _read(self, response: requests.Response, deadline: float, timeout: float) -> bytes:
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise TooLarge(self.max_bytes)
        body = bytearray()
        # read1 returns what one read of the socket brought, so the deadline is checked
        # as a trickling body arrives (each read alone is bounded by the timeout). It
        # decompresses: the bound is on what would be held in memory.
        while chunk := response.raw.read1(_CHUNK_BYTES, decode_content=True):
            body += chunk
            if len(body) > self.max_bytes:
                raise TooLarge(self.max_bytes)
            if time.monotonic() > deadline:
                raise Timeout(timeout)
        return bytes(body)


# The connection-time check, in urllib3's own extension points: a connection class whose
# connect step resolves, judges and connects to the judged address.


class _Guarded:
    def __init__(self, *args: Any, policy: Policy, **kwargs: Any) -> None:
        self.policy = policy
        super().__init__(*args, **kwargs)

    def _new_conn(self) -> socket.socket:
        host = self._dns_host.strip("[]")
        try:
            host.encode("idna")
        except UnicodeError:
            raise LocationParseError(f"'{host}', label empty or too long") from None
        try:
            found = socket.getaddrinfo(
                host, self.port, connection.allowed_gai_family(), socket.SOCK_STREAM
            )
        except socket.gaierror as error:
            raise NameResolutionError(self.host, self, error) from error
        addresses = list(dict.fromkeys(info[4][0] for info in found))
        allowed = self.policy.allowed()
        for address in addresses:
            kind = refusal(address, self.policy, allowed)
            if kind is not None:
                # Any refused answer refuses the name: which one a retry would get is
                # the name owner's choice, not ours.
                literal = numeric_addresses(host) is not None
                raise Refused(self.host, kind, self.policy.setting, literal)
        failure: OSError | None = None
        deadline = getattr(_current, "deadline", None)
        for address in addresses:
            # Each address tries for what is left of the request's time, not a full
            # timeout each: a name with many silent addresses stays bounded.
            wait = self.timeout if deadline is None else deadline.connect_timeout(self.timeout)
            if wait is not None and wait <= 0:
                failure = TimeoutError("the request's time ran out")
                break
            try:
                return connection.create_connection(
                    (address, self.port),
                    wait,
                    source_address=self.source_address,
                    socket_options=self.socket_options,
                )
            except OSError as error:
                failure = error
        if isinstance(failure, TimeoutError):
            raise ConnectTimeoutError(
                self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})"
            ) from failure
        raise NewConnectionError(
            self, f"Failed to establish a new connection: {failure}"
        ) from failure


class _GuardedHTTPConnection(_Guarded, HTTPConnection):
    pass


class _GuardedHTTPSConnection(_Guarded, HTTPSConnection):
    pass


class _Watched:
    """A pool that tells the request's deadline which connection it is using, so the
    watchdog can cut that connection (a new one or a kept-alive one alike)."""

    def _get_conn(self, timeout: float | None = None) -> Any:
        conn = super()._get_conn(timeout)  # type: ignore[misc]
        deadline = getattr(_current, "deadline", None)
        if deadline is not None:
            deadline.using(conn)
        return conn


class _GuardedHTTPPool(_Watched, HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(_Watched, HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


# The request's deadline and the one thread that enforces every deadline.

# A request may take this many times its timeout, all told: connecting and the wait for
# the headers each have one timeout, the body what is left.
TOTAL_TIMEOUTS = 2

_current = threading.local()


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds
        self.passed = False
        self.done = False
        self._conn: Any = None
        self._lock = threading.Lock()

    def connect_timeout(self, timeout: float | None) -> float | None:
        left = self.at - time.monotonic()
        return left if timeout is None else min(timeout, left)

    def using(self, conn: Any) -> None:
        with self._lock:
            self._conn = conn
            passed = self.passed
        if passed:
            self._shut(conn)

    def cut(self) -> None:
        with self._lock:
            if self.done:
                return
            self.passed = True
            conn = self._conn
        self._shut(conn)

    @staticmethod
    def _shut(conn: Any) -> None:
        sock = getattr(conn, "sock", None)
        if sock is None:
            return
        try:
            # The plain socket's shutdown, under TLS too: the read blocked in the
            # request's thread returns at once, and the request fails there.
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass


class _Watchdog:
    """One daemon thread for every request's deadline (a timer thread per request would
    cost more than a quick query)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, _Deadline]] = []
        self._count = 0
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def watch(self, deadline: _Deadline) -> None:
        with self._wake:
            self._count += 1
            heapq.heappush(self._heap, (deadline.at, self._count, deadline))
            if self._thread is None or not self._thread.is_alive():
                # Started lazily, and again after a fork (a worker process has none).
                self._thread = threading.Thread(
                    target=self._run, name="outbound-watchdog", daemon=True
                )
                self._thread.start()
            elif self._heap[0][2] is deadline:
                self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._heap and self._heap[0][2].done:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._wake.wait(60)
                    continue
                left = self._heap[0][0] - time.monotonic()
                if left > 0:
                    self._wake.wait(left)
                    continue
                _, _, deadline = heapq.heappop(self._heap)
            deadline.cut()


_watchdog = _Watchdog()


class _GuardedAdapter(HTTPAdapter):
    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        # The pools hand `policy` to every connection they make; a connection class
        # that requires it cannot be made unguarded by accident.
        self.poolmanager.pool_classes_by_scheme = {
            "http": partial(_GuardedHTTPPool, policy=self.policy),
            "https": partial(_GuardedHTTPSPool, policy=self.policy),
        }


# Saying what went wrong in our words: the causes' own texts may quote the other side
# (an HTTP status line, a chunk header), so only their kinds are read.


def _causes(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    pending = [error]
    while pending:
        cause = pending.pop(0)
        if id(cause) in seen:
            continue
        seen.add(id(cause))
        yield cause
        pending.extend(arg for arg in cause.args if isinstance(arg, BaseException))
        for linked in (getattr(cause, "reason", None), cause.__cause__, cause.__context__):
            if isinstance(linked, BaseException):
                pending.append(linked)


def _reason(error: BaseException) -> str:
    causes = list(_causes(error))
    for cause in causes:
        if isinstance(cause, socket.gaierror):
            return "its host name does not resolve"
    for cause in causes:
        if isinstance(cause, ssl.SSLError):
            # reason is OpenSSL's code (CERTIFICATE_VERIFY_FAILED), not the peer's text.
            return f"TLS failed ({cause.reason or type(cause).__name__})"
    for cause in causes:
        if isinstance(cause, http.client.IncompleteRead):
            return "the connection closed before the answer was complete"
        if isinstance(cause, http.client.RemoteDisconnected):
            return "the connection closed without an answer"
        if isinstance(cause, http.client.HTTPException):
            return "the answer is not HTTP"
    for cause in causes:
        if isinstance(cause, OSError) and cause.errno:
            return os.strerror(cause.errno)
    return "the connection failed"


def _size(limit: int) -> str:
    if limit >= 1024 * 1024 and limit % (1024 * 1024) == 0:
        return f"{limit // (1024 * 1024)} MiB"
    if limit >= 1024 and limit % 1024 == 0:
        return f"{limit // 1024} KiB"
    return f"{limit} bytes"
