"""The one image URL fetcher against a loopback SSRF test server: private addresses (by IP,
by a DNS name, behind a redirect), trickling servers, oversized bodies; every path refused
within the deadline, and a good image fetched only when its host is allowed."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator

import pytest

from processors.errors import ImageError, UrlInvalid, UrlRefused
from processors.fetch import FetchPolicy, fetch, public, vet
from schemas.dead_letter import ErrorKind
from tests.synthetic import encode, synthetic_garment

IMAGE = encode(synthetic_garment())


class Handler(http.server.BaseHTTPRequestHandler):
    """Each path one behaviour of a hostile or a friendly image server."""

    def do_GET(self) -> None:
        assert isinstance(self.server, http.server.HTTPServer)
        port = self.server.server_port
        routes = {
            "/ok.png": lambda: self._send(200, IMAGE),
            "/to-private": lambda: self._redirect(f"http://127.0.0.1:{port}/ok.png"),
            "/to-ok": lambda: self._redirect("/ok.png"),
            "/loop": lambda: self._redirect("/loop"),
            "/missing": lambda: self._send(404, b"no"),
            "/big-declared": lambda: self._send(200, b"x" * 10, length=10**9),
            "/big-streamed": self._stream_big,
            "/trickle-body": self._trickle_body,
            "/trickle-headers": self._trickle_headers,
        }
        routes.get(self.path, lambda: self._send(404, b""))()

    def _send(self, status: int, body: bytes, length: int | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _stream_big(self) -> None:
        self.send_response(200)
        self.end_headers()
        for _ in range(64):
            self.wfile.write(b"x" * 4096)

    def _trickle_body(self) -> None:
        self.send_response(200)
        self.end_headers()
        for _ in range(60):
            self.wfile.write(b"x")
            self.wfile.flush()
            time.sleep(0.1)

    def _trickle_headers(self) -> None:
        for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"y" * 60:
            self.wfile.write(bytes([byte]))
            self.wfile.flush()
            time.sleep(0.1)

    def log_message(self, *args: object) -> None:
        """Quiet."""


class QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hung up on a trickle is the point of the test, not an error."""


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = QuietServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"localhost:{httpd.server_address[1]}"
    httpd.shutdown()


# The test server is reached by the name "localhost": allow-listed, its redirects to the bare
# IP 127.0.0.1 are a different, private host.
ALLOWED = FetchPolicy(allowed_hosts=frozenset({"localhost"}), timeout_s=1.5, max_bytes=64_000)


def test_an_allowed_host_is_fetched_and_its_safe_redirect_followed(server: str) -> None:
    assert fetch(f"http://{server}/ok.png", ALLOWED) == IMAGE
    assert fetch(f"http://{server}/to-ok", ALLOWED) == IMAGE


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x.png",
        "http://10.1.2.3/x.png",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/x.png",
        "http://0.0.0.0/x.png",
        "http://localhost/x.png",  # a DNS name of a private address
    ],
)
def test_private_addresses_are_refused_by_default(url: str) -> None:
    with pytest.raises(UrlRefused, match="non-public") as refused:
        fetch(url, FetchPolicy(timeout_s=1))
    assert refused.value.kind is ErrorKind.IMAGE_UNAVAILABLE  # a dead letter's kind


def test_the_checked_address_is_the_one_connected(server: str) -> None:
    target = vet(f"http://{server}/ok.png", ALLOWED)
    assert target.address in ("127.0.0.1", "::1") and target.host == "localhost"
    with pytest.raises(UrlRefused, match="not in the allowed hosts"):
        vet("http://cdn.example/a.png", ALLOWED)


@pytest.mark.parametrize(
    ("path", "kind", "why"),
    [
        ("/to-private", ErrorKind.IMAGE_UNAVAILABLE, "not in the allowed hosts"),
        ("/loop", ErrorKind.IMAGE_UNAVAILABLE, "redirects"),
        ("/missing", ErrorKind.IMAGE_UNAVAILABLE, "HTTP 404"),
        ("/big-declared", ErrorKind.IMAGE_TOO_LARGE, "over the"),
        ("/big-streamed", ErrorKind.IMAGE_TOO_LARGE, "exceeds"),
        ("/trickle-body", ErrorKind.IMAGE_UNAVAILABLE, "deadline"),
        ("/trickle-headers", ErrorKind.IMAGE_UNAVAILABLE, "deadline"),
    ],
)
def test_hostile_servers_are_refused_within_the_deadline(
    server: str, path: str, kind: ErrorKind, why: str
) -> None:
    started = time.monotonic()
    with pytest.raises(ImageError, match=why) as refused:
        fetch(f"http://{server}{path}", ALLOWED)
    assert refused.value.kind is kind
    assert time.monotonic() - started < ALLOWED.timeout_s + 0.5


@pytest.mark.parametrize(
    "url", ["ftp://cdn.example/a.png", "file:///etc/passwd", "http://[", "http:///x.png"]
)
def test_only_http_urls_with_a_host(url: str) -> None:
    with pytest.raises(UrlInvalid):
        fetch(url, FetchPolicy(timeout_s=1))


def test_a_hanging_name_lookup_is_cut_at_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    def hangs(*args: object, **kwargs: object) -> list[object]:
        time.sleep(5)
        return []

    monkeypatch.setattr("processors.fetch.socket.getaddrinfo", hangs)
    started = time.monotonic()
    with pytest.raises(ImageError, match="resolving") as refused:
        fetch("http://slow-dns.example/a.png", FetchPolicy(timeout_s=0.5))
    assert refused.value.kind is ErrorKind.IMAGE_UNAVAILABLE
    assert time.monotonic() - started < 1.5


@pytest.mark.parametrize(
    "address",
    [
        "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 of the metadata service
        "2002:a9fe:a9fe::",  # 6to4 of 169.254.169.254
        "::ffff:0:7f00:1",  # SIIT of 127.0.0.1
        "::127.0.0.1",  # IPv4-compatible
        "::ffff:127.0.0.1",  # IPv4-mapped
        "fec0::1",  # site-local
    ],
)
def test_ipv6_forms_of_private_ipv4_are_not_public(address: str) -> None:
    assert not public(address)


def test_public_addresses_and_non_ascii_paths() -> None:
    assert public("8.8.8.8") and public("2001:4860:4860::8888") and public("64:ff9b::808:808")
    target = vet("https://localhost/\u00e9t\u00e9 1.jpg?q=\u00e9", ALLOWED)
    assert target.path == "/%C3%A9t%C3%A9%201.jpg?q=%C3%A9" and target.path.isascii()
