"""The outbound guard: which addresses it refuses, and that it refuses them where it
matters, on the connection, against real servers on loopback."""

from __future__ import annotations

import gzip
import ipaddress
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.exceptions import ImproperlyConfigured

from controlplane import environment as env
from controlplane.catalog import outbound
from controlplane.catalog.outbound import SOURCES, WEBHOOKS, refusal
from tests.promql.fake import FakePrometheus, vector
from tests.services import free_port


def networks(*cidrs):
    return [ipaddress.ip_network(cidr) for cidr in cidrs]


# The policy, as a table: address x policy x allow-list -> what refuses it (None: allowed).


@pytest.mark.parametrize(
    ("address", "policy", "allowed", "refused_as"),
    [
        # Sources: private networks are where Prometheus lives.
        ("10.1.2.3", SOURCES, [], None),
        ("172.16.0.1", SOURCES, [], None),
        ("192.168.1.10", SOURCES, [], None),
        ("100.64.0.1", SOURCES, [], None),
        ("fd12:3456::1", SOURCES, [], None),
        ("203.0.113.9", SOURCES, [], None),
        ("2001:db8::1", SOURCES, [], None),
        # ...but not this machine, the link, the cloud's metadata or no address at all.
        ("127.0.0.1", SOURCES, [], "a loopback address"),
        ("127.255.255.254", SOURCES, [], "a loopback address"),
        ("::1", SOURCES, [], "a loopback address"),
        ("::ffff:127.0.0.1", SOURCES, [], "a loopback address"),
        ("169.254.169.254", SOURCES, [], "a cloud metadata address"),
        ("fd00:ec2::254", SOURCES, [], "a cloud metadata address"),
        ("100.100.100.200", SOURCES, [], "a cloud metadata address"),
        ("::ffff:169.254.169.254", SOURCES, [], "a cloud metadata address"),
        # IPv4 carried inside IPv6, where a network would deliver it to that IPv4 host.
        ("64:ff9b::a9fe:a9fe", SOURCES, [], "a cloud metadata address"),  # NAT64
        ("2002:7f00:1::", SOURCES, [], "a loopback address"),  # 6to4
        ("::127.0.0.1", SOURCES, [], "a loopback address"),  # IPv4-compatible
        ("64:ff9b::a00:1", WEBHOOKS, [], "a private address"),
        ("64:ff9b::808:808", WEBHOOKS, [], None),  # 8.8.8.8 by NAT64: public
        ("169.254.1.1", SOURCES, [], "a link-local address"),
        ("fe80::1", SOURCES, [], "a link-local address"),
        ("fe80::1%eth0", SOURCES, [], "a link-local address"),
        ("0.0.0.0", SOURCES, [], "an unspecified address"),
        ("::", SOURCES, [], "an unspecified address"),
        ("224.0.0.1", SOURCES, [], "a multicast address"),
        ("ff02::1", SOURCES, [], "a multicast address"),
        ("255.255.255.255", SOURCES, [], "a broadcast address"),
        # The allow-list lets through what it names, and only that.
        ("127.0.0.1", SOURCES, networks("127.0.0.0/8", "::1/128"), None),
        ("::1", SOURCES, networks("127.0.0.0/8", "::1/128"), None),
        ("::ffff:127.0.0.1", SOURCES, networks("127.0.0.0/8"), None),
        ("127.0.0.1", SOURCES, networks("::1/128"), "a loopback address"),
        ("169.254.169.254", SOURCES, networks("127.0.0.0/8"), "a cloud metadata address"),
        ("169.254.169.254", SOURCES, networks("169.254.169.254/32"), None),
        ("127.0.0.2", SOURCES, networks("127.0.0.1/32"), "a loopback address"),
        # Webhooks: no private address either, unless allowed.
        ("10.1.2.3", WEBHOOKS, [], "a private address"),
        ("172.31.255.255", WEBHOOKS, [], "a private address"),
        ("192.168.1.10", WEBHOOKS, [], "a private address"),
        ("100.64.0.1", WEBHOOKS, [], "a private address"),
        ("fd12:3456::1", WEBHOOKS, [], "a private address"),
        ("::ffff:10.0.0.1", WEBHOOKS, [], "a private address"),
        ("fd00:ec2::254", WEBHOOKS, [], "a cloud metadata address"),
        ("127.0.0.1", WEBHOOKS, [], "a loopback address"),
        ("203.0.113.9", WEBHOOKS, [], None),
        ("172.32.0.1", WEBHOOKS, [], None),
        ("10.1.2.3", WEBHOOKS, networks("10.0.0.0/8"), None),
        ("10.1.2.3", WEBHOOKS, networks("192.168.0.0/16"), "a private address"),
    ],
)
def test_the_policy(address, policy, allowed, refused_as):
    assert refusal(address, policy, allowed) == refused_as


@pytest.mark.parametrize(
    ("host", "addresses"),
    [
        ("127.0.0.1", ["127.0.0.1"]),
        # Every spelling the resolver connects to is a number, not a name.
        ("127.1", ["127.0.0.1"]),
        ("0x7f.0.0.1", ["127.0.0.1"]),
        ("2130706433", ["127.0.0.1"]),
        ("[::1]", ["::1"]),
        ("::1", ["::1"]),
        ("localhost", None),
        ("prometheus", None),
        ("prometheus.example", None),
    ],
)
def test_numeric_hosts_are_read_as_the_resolver_reads_them(host, addresses):
    assert outbound.numeric_addresses(host) == addresses


def test_a_literal_address_is_judged_when_saved(settings):
    settings.ALLOWED_SOURCE_NETWORKS = []
    with pytest.raises(outbound.Refused) as raised:
        outbound.check_literal("127.1", SOURCES)
    assert raised.value.message == (
        "127.1 is a loopback address; set ALLOWED_SOURCE_NETWORKS to allow it"
    )
    # A name is left to the connection: DNS may answer otherwise by then.
    outbound.check_literal("localhost", SOURCES)
    settings.ALLOWED_SOURCE_NETWORKS = ["127.0.0.0/8"]
    outbound.check_literal("127.1", SOURCES)


def test_webhooks_name_their_own_setting(settings):
    settings.ALLOWED_PRIVATE_NETWORKS = []
    with pytest.raises(outbound.Refused, match="set ALLOWED_PRIVATE_NETWORKS to allow it"):
        outbound.check_literal("10.0.0.1", WEBHOOKS)


# On the connection.


@pytest.fixture
def guard():
    return outbound.Outbound(SOURCES)


def test_a_name_resolving_to_a_refused_address_is_refused_when_connecting(settings, fake, guard):
    settings.ALLOWED_SOURCE_NETWORKS = []
    port = fake.server.server_port

    with pytest.raises(outbound.Refused) as raised:
        guard.request("GET", f"http://localhost:{port}/", timeout=2)

    assert raised.value.message == (
        "localhost resolves to a loopback address; set ALLOWED_SOURCE_NETWORKS to allow it"
    )
    assert fake.requests == []


def test_a_literal_refused_address_is_refused_when_connecting(settings, fake, guard):
    settings.ALLOWED_SOURCE_NETWORKS = []

    with pytest.raises(outbound.Refused, match=r"^127\.0\.0\.1 is a loopback address"):
        guard.request("GET", fake.url, timeout=2)
    assert fake.requests == []


def test_the_allow_list_is_read_on_every_connection(settings, fake, guard):
    settings.ALLOWED_SOURCE_NETWORKS = ["127.0.0.1/32"]
    port = fake.server.server_port

    answer = guard.request("GET", f"http://localhost:{port}/x", timeout=2)

    assert answer.status == 200
    assert fake.requests[-1]["headers"]["Host"] == f"localhost:{port}"


def test_the_connection_goes_to_the_address_that_was_judged(settings, fake, guard, monkeypatch):
    # DNS rebinding: the name answers an allowed address to the check, then another.
    # Connecting by name after checking would reach the second; the guard connects to
    # the first, and the request still names the host.
    settings.ALLOWED_SOURCE_NETWORKS = ["127.0.0.1/32"]
    real_getaddrinfo = socket.getaddrinfo
    asked = []

    def rebinding(host, *args, **kwargs):
        if host == "rebind.test" and not kwargs.get("flags"):
            asked.append(host)
            host = "127.0.0.1" if len(asked) == 1 else "127.0.0.2"
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    port = fake.server.server_port

    answer = guard.request("GET", f"http://rebind.test:{port}/", timeout=2)

    assert answer.status == 200
    assert asked == ["rebind.test"]
    assert fake.requests[-1]["headers"]["Host"] == f"rebind.test:{port}"


def test_one_refused_answer_refuses_the_name(settings, fake, guard, monkeypatch):
    settings.ALLOWED_SOURCE_NETWORKS = ["127.0.0.1/32"]
    real_getaddrinfo = socket.getaddrinfo

    def two_answers(host, port, *args, **kwargs):
        if host == "mixed.test" and not kwargs.get("flags"):
            return [
                *real_getaddrinfo("127.0.0.1", port, *args, **kwargs),
                *real_getaddrinfo("169.254.169.254", port, *args, **kwargs),
            ]
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", two_answers)

    with pytest.raises(outbound.Refused, match="resolves to a cloud metadata address"):
        guard.request("GET", f"http://mixed.test:{fake.server.server_port}/", timeout=2)
    assert fake.requests == []


def test_proxy_variables_of_the_environment_are_ignored(fake, guard, monkeypatch):
    # A proxy would make the connection for us, past the check.
    proxy = FakePrometheus()
    try:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("http_proxy", proxy.url)
        guard.request("GET", fake.url + "/direct", timeout=2)
    finally:
        proxy.close()
    assert proxy.requests == []
    assert fake.requests[-1]["path"] == "/direct"


# Redirects, size and time.


@pytest.fixture
def elsewhere():
    """A second server, recording anything that reaches it."""
    server = FakePrometheus()
    yield server
    server.close()


def redirect_to(location, status=302):
    def reply(handler):
        handler.send_response(status)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return reply


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_never_followed(fake, elsewhere, guard, status):
    fake.reply = redirect_to(elsewhere.url + "/api/v1/query", status)

    with pytest.raises(outbound.Redirected) as raised:
        guard.request(
            "POST",
            fake.url + "/api/v1/query",
            data={"query": "up"},
            headers={"Authorization": "Bearer s3cret"},
            timeout=2,
        )

    assert raised.value.message == (
        f"answered with a redirect (HTTP {status}); redirects are not followed"
    )
    assert fake.requests[-1]["headers"]["Authorization"] == "Bearer s3cret"
    assert elsewhere.requests == []


def test_an_answer_at_the_limit_is_read(fake):
    body = b"x" * 1000
    fake.reply = fake.raw(200, body, "text/plain")

    assert outbound.Outbound(SOURCES, max_bytes=1000).request("GET", fake.url, timeout=2).body == (
        body
    )


def test_a_declared_length_past_the_limit_is_refused_unread(fake):
    fake.reply = fake.raw(200, b"x" * 1001, "text/plain")

    with pytest.raises(outbound.TooLarge, match="more than 1000 bytes"):
        outbound.Outbound(SOURCES, max_bytes=1000).request("GET", fake.url, timeout=2)


def chunked(body: bytes, headers=()):
    def reply(handler):
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Transfer-Encoding", "chunked")
        for name, value in headers:
            handler.send_header(name, value)
        handler.end_headers()
        for start in range(0, len(body), 4096):
            piece = body[start : start + 4096]
            handler.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        handler.wfile.write(b"0\r\n\r\n")
        handler.close_connection = True

    return reply


def test_an_undeclared_length_past_the_limit_is_refused(fake):
    fake.reply = chunked(b"x" * 300_000)

    with pytest.raises(outbound.TooLarge, match="more than 64 KiB"):
        outbound.Outbound(SOURCES, max_bytes=64 * 1024).request("GET", fake.url, timeout=2)


def test_the_limit_applies_to_the_body_once_decompressed(fake):
    bomb = gzip.compress(b"0" * 5_000_000)
    assert len(bomb) < 64 * 1024
    fake.reply = chunked(bomb, [("Content-Encoding", "gzip")])

    with pytest.raises(outbound.TooLarge):
        outbound.Outbound(SOURCES, max_bytes=64 * 1024).request("GET", fake.url, timeout=2)


def test_a_body_that_trickles_is_cut_off_at_the_timeout(fake, guard):
    def trickle(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", "1000")
        handler.end_headers()
        for _ in range(1000):
            handler.wfile.write(b"x")
            handler.wfile.flush()
            time.sleep(0.1)

    fake.reply = trickle

    # Each read is well within the timeout: only the deadline on the body stops it
    # (without it the whole body arrives, after 100 s).
    with pytest.raises(outbound.Timeout, match=r"did not answer within 0\.5 s"):
        guard.request("GET", fake.url, timeout=0.5)


def test_headers_that_trickle_are_cut_off_by_the_requests_deadline(fake, guard):
    # A header line every 0.2 s never trips a 0.5 s read timeout; unchecked, the exchange
    # lasts until the client gives up counting headers (100 of them, 20 s), and then as
    # a broken answer, not as the timeout it is.
    sent = []

    def trickle(handler):
        handler.wfile.write(b"HTTP/1.1 200 OK\r\n")
        for n in range(150):
            try:
                handler.wfile.write(f"X-Line-{n}: {n}\r\n".encode())
                handler.wfile.flush()
            except OSError:
                return
            sent.append(n)
            time.sleep(0.2)

    fake.reply = trickle

    with pytest.raises(outbound.Timeout, match=r"did not answer within 0\.5 s"):
        guard.request("GET", fake.url, timeout=0.5)


# Failures, in our words only.


@pytest.fixture
def raw_server():
    """A TCP server that answers every connection with the given bytes, then closes."""
    listener = socket.create_server(("127.0.0.1", 0))
    answer = {"bytes": b""}

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(answer["bytes"])

    threading.Thread(target=serve, daemon=True).start()

    def set_answer(data: bytes) -> str:
        answer["bytes"] = data
        return f"http://127.0.0.1:{listener.getsockname()[1]}/"

    yield set_answer
    listener.close()


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (b"-ERR s3cret redis says hello\r\n", "the answer is not HTTP"),
        (b"SSH-2.0-OpenSSH_s3cret\r\n", "the answer is not HTTP"),
        (b"", "the connection closed without an answer"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\ns3cret\r\n",
            "the connection closed before the answer was complete",
        ),
    ],
)
def test_what_the_other_side_sent_is_never_quoted(raw_server, guard, answer, reason):
    with pytest.raises(outbound.Unreachable) as raised:
        guard.request("GET", raw_server(answer), timeout=2)
    assert raised.value.message == f"is unreachable: {reason}"


def test_a_closed_port_says_so(guard):
    with pytest.raises(outbound.Unreachable, match="is unreachable: Connection refused"):
        guard.request("GET", f"http://127.0.0.1:{free_port()}/", timeout=2)


def test_an_unresolvable_name_says_so(guard):
    with pytest.raises(outbound.Unreachable, match="host name does not resolve"):
        guard.request("GET", "http://prometheus.invalid/", timeout=2)


@pytest.mark.parametrize(
    ("url", "headers"),
    [
        ("http://prometheus:9090/", {"Authorization": "Bearer a\nX-Evil: 1"}),
        ("gopher://prometheus/", {}),
        ("http://" + "a" * 64 + ".example/", {}),
    ],
)
def test_what_cannot_go_on_the_wire_is_unsendable(guard, url, headers):
    with pytest.raises(outbound.Unsendable):
        guard.request("GET", url, headers=headers, timeout=2)


def test_a_successful_answer(fake, guard):
    fake.answer(200, vector())

    answer = guard.request("POST", fake.url + "/api/v1/query", data={"query": "up"}, timeout=2)

    assert answer.ok
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.body.startswith(b'{"status": "success"')
    assert fake.requests[-1]["params"] == {"query": "up"}


def test_raw_content_is_sent_byte_for_byte(settings, guard):
    # A signed webhook body: the receiver checks the signature over the bytes it got.
    settings.ALLOWED_SOURCE_NETWORKS = ["127.0.0.1/32"]
    received = []

    class Capture(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Capture)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    content = '{"b": 1,  "a":"é"}\n'.encode()
    try:
        answer = guard.request(
            "POST",
            f"http://127.0.0.1:{server.server_port}/hook",
            content=content,
            headers={"Content-Type": "application/json"},
            timeout=2,
        )
    finally:
        server.shutdown()
        server.server_close()

    assert answer.status == 204
    assert received == [content]


def test_a_body_is_given_once(guard):
    with pytest.raises(TypeError, match="give the body once"):
        guard.request("POST", "http://127.0.0.1:1/", content=b"{}", json={}, timeout=2)


def test_https_is_judged_before_any_handshake(settings, fake, guard):
    settings.ALLOWED_SOURCE_NETWORKS = []

    with pytest.raises(outbound.Refused, match=r"^localhost resolves to a loopback address"):
        guard.request("GET", f"https://localhost:{fake.server.server_port}/", timeout=2)
    assert fake.requests == []


def test_a_failed_handshake_says_so_in_openssl_words(fake, guard):
    # The fake speaks plain HTTP: the TLS handshake cannot succeed.
    with pytest.raises(outbound.Unreachable, match=r"^is unreachable: TLS failed \([A-Z_]+\)$"):
        guard.request("GET", f"https://127.0.0.1:{fake.server.server_port}/", timeout=2)


# The settings that allow networks.


@pytest.mark.parametrize(
    ("raw", "read"),
    [
        ("", []),
        ("127.0.0.0/8,::1/128", ["127.0.0.0/8", "::1/128"]),
        (" 10.0.0.0/8 , fd00::/8 ,", ["10.0.0.0/8", "fd00::/8"]),
        ("127.0.0.1", ["127.0.0.1/32"]),
        ("::1", ["::1/128"]),
    ],
)
def test_allowed_networks_are_read_as_cidrs(monkeypatch, raw, read):
    monkeypatch.setenv("ALLOWED_SOURCE_NETWORKS", raw)
    assert env.networks("ALLOWED_SOURCE_NETWORKS") == read


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("10.0.0.0/33", "ALLOWED_SOURCE_NETWORKS must be networks such as 10.0.0.0/8"),
        ("localhost", "ALLOWED_SOURCE_NETWORKS must be networks such as 10.0.0.0/8"),
        ("10.0.0.0/8;192.168.0.0/16", "got '10.0.0.0/8;192.168.0.0/16'"),
        ("10.1.2.3/8", "'10.1.2.3/8' has bits set past its prefix; did you mean 10.0.0.0/8?"),
    ],
)
def test_a_malformed_network_stops_the_start(monkeypatch, raw, message):
    monkeypatch.setenv("ALLOWED_SOURCE_NETWORKS", raw)
    with pytest.raises(ImproperlyConfigured) as raised:
        env.networks("ALLOWED_SOURCE_NETWORKS")
    assert message in str(raised.value)
