"""The one image URL fetcher, for the worker and the API alike.

- http and https only; the host must be allowed (when hosts are listed) or every address it
  resolves to public (``public_only``): no private, loopback, link-local or reserved ones;
- the connection goes to the address that was checked (pinned: a DNS answer that changes
  between the check and the connect cannot redirect it), TLS still verified for the name;
- each redirect (at most ``MAX_REDIRECTS``) is checked the same way before it is followed;
- one wall-clock deadline for the whole fetch, enforced by shutting the socket down (a server
  trickling a byte a second cannot hold a worker or an API thread past it);
- at most ``max_bytes + 1`` read, and a Content-Length over the cap refused before reading.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Collection
from dataclasses import dataclass

from processors.errors import ImageError, UrlInvalid, UrlRefused
from schemas.dead_letter import ErrorKind

MAX_REDIRECTS = 3
REDIRECTS = frozenset({301, 302, 303, 307, 308})
CHUNK = 64 * 1024


@dataclass(frozen=True)
class FetchPolicy:
    allowed_hosts: Collection[str] = frozenset()  # listed: only these (any address)
    public_only: bool = True  # none listed: only hosts whose every address is public
    timeout_s: float = 5.0  # the whole fetch, redirects included
    max_bytes: int = 10 * 1024 * 1024


@dataclass(frozen=True)
class Target:
    """A URL checked against the policy, with the address its connection must use."""

    url: str
    https: bool
    host: str
    port: int
    path: str
    address: str


# IPv6 prefixes that carry an IPv4 address in their last 32 bits (NAT64, SIIT, compatible):
# public themselves, they reach whatever the embedded address is.
_EMBEDS_V4 = tuple(
    ipaddress.ip_network(n) for n in ("64:ff9b::/96", "64:ff9b:1::/48", "::ffff:0:0:0/96", "::/96")
)


def public(address: str) -> bool:
    """Globally reachable, also through any IPv4 address an IPv6 one embeds (mapped, 6to4,
    Teredo, NAT64, SIIT, compatible): those translate to private space as easily."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if not ip.is_global:
        return False
    if isinstance(ip, ipaddress.IPv4Address):
        return True
    if ip.is_site_local:
        return False
    embedded = [ip.ipv4_mapped, ip.sixtofour, *(ip.teredo or ())]
    embedded += [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) for net in _EMBEDS_V4 if ip in net]
    return all(v4.is_global for v4 in embedded if v4 is not None)


def _unavailable(message: str) -> ImageError:
    return ImageError(message, ErrorKind.IMAGE_UNAVAILABLE)


def _resolve(host: str, port: int, timeout_s: float) -> list[str]:
    """The host's addresses, within ``timeout_s`` (getaddrinfo itself cannot be bounded: it
    runs in a daemon thread, left to the resolver's own timeout when it hangs)."""
    found: list[str] = []
    failed: list[BaseException] = []

    def run() -> None:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            found.extend(str(info[4][0]) for info in infos)
        except BaseException as exc:  # handed to the caller
            failed.append(exc)

    thread = threading.Thread(target=run, name="resolve", daemon=True)
    thread.start()
    thread.join(max(0.0, timeout_s))
    if thread.is_alive():
        raise _unavailable(f"resolving {host!r} took longer than the deadline")
    if failed:
        if isinstance(failed[0], UnicodeError):
            raise UrlInvalid(f"image host {host!r} is not valid") from failed[0]
        raise _unavailable(f"cannot resolve {host!r}: {failed[0]}") from failed[0]
    return found


def vet(url: str, policy: FetchPolicy, deadline: float | None = None) -> Target:
    """Check a URL against the policy and resolve the address to connect to (by
    ``deadline``, a time.monotonic() value; default: the policy's timeout from now)."""
    try:
        parsed = urllib.parse.urlsplit(url)
        port = parsed.port
    except ValueError as exc:
        raise UrlInvalid(f"malformed image url: {exc}") from exc
    if parsed.scheme not in ("http", "https"):
        raise UrlInvalid(f"image url scheme {parsed.scheme!r} is not http or https")
    host = parsed.hostname
    if not host:
        raise UrlInvalid("image url has no host")
    https = parsed.scheme == "https"
    port = port or (443 if https else 80)
    if policy.allowed_hosts and host not in policy.allowed_hosts:
        raise UrlRefused(f"image host {host!r} is not in the allowed hosts")
    deadline = time.monotonic() + policy.timeout_s if deadline is None else deadline
    addresses = _resolve(host, port, deadline - time.monotonic())
    if not policy.allowed_hosts and policy.public_only:
        for address in addresses:
            if not public(address):
                raise UrlRefused(f"image host {host!r} resolves to a non-public address")
    # http.client sends the request line as ASCII: percent-encode what is not
    path = urllib.parse.quote(parsed.path or "/", safe="/%:@!$&'()*+,;=~-._")
    if parsed.query:
        path += "?" + urllib.parse.quote(parsed.query, safe="/%:@!$&'()*+,;=?~-._")
    return Target(url, https, host, port, path, addresses[0])


class _Pinned(http.client.HTTPSConnection):
    """An HTTP(S) connection to a vetted address, whatever the name resolves to now."""

    def __init__(self, target: Target, timeout: float) -> None:
        context = ssl.create_default_context() if target.https else None
        super().__init__(target.host, target.port, timeout=timeout, context=context)
        self.target = target
        self.tls = context
        # kept here: http.client hands the socket to the response and forgets it
        self.raw: socket.socket | None = None
        self.expired = threading.Event()
        self.lock = threading.Lock()

    def _hold(self, sock: socket.socket) -> None:
        """Make ``sock`` the one the deadline shuts down; refuse if it has passed already."""
        with self.lock:
            if self.expired.is_set():
                sock.close()
                raise TimeoutError("the deadline passed")
            self.raw = sock

    def expire(self) -> None:
        """At the deadline: a blocked connect, handshake or recv returns."""
        with self.lock:
            self.expired.set()
            if self.raw is not None:
                with contextlib.suppress(OSError):
                    self.raw.shutdown(socket.SHUT_RDWR)

    def connect(self) -> None:
        sock = socket.create_connection((self.target.address, self.target.port), self.timeout)
        self._hold(sock)
        if self.tls is not None:
            sock = self.tls.wrap_socket(
                sock, server_hostname=self.target.host, do_handshake_on_connect=False
            )
            self._hold(sock)
            sock.do_handshake()
        self.sock = sock


def _read_capped(response: http.client.HTTPResponse, max_bytes: int, deadline: float) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size <= max_bytes and (chunk := response.read1(min(CHUNK, max_bytes + 1 - size))):
        chunks.append(chunk)
        size += len(chunk)
        if time.monotonic() > deadline:
            raise TimeoutError("the deadline passed")
    return b"".join(chunks)


def _get(target: Target, deadline: float, max_bytes: int) -> tuple[int, str | None, bytes]:
    """(status, redirect location, body) of one GET, within the deadline."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise _unavailable(f"fetching {target.url} took longer than the deadline")
    conn = _Pinned(target, remaining)
    expired = conn.expired
    timer = threading.Timer(remaining, conn.expire)
    timer.daemon = True
    timer.start()
    try:
        conn.request("GET", target.path, headers={"User-Agent": "stylestream-image-fetcher"})
        response = conn.getresponse()
        if response.status in REDIRECTS:
            return response.status, response.getheader("Location"), b""
        length = (response.getheader("Content-Length") or "").strip()
        if length.isascii() and length.isdigit() and int(length) > max_bytes:
            raise ImageError(
                f"image at {target.url} is {length} bytes, over the {max_bytes} limit",
                ErrorKind.IMAGE_TOO_LARGE,
            )
        body = _read_capped(response, max_bytes, deadline) if response.status == 200 else b""
        if expired.is_set():
            raise _unavailable(f"fetching {target.url} took longer than the deadline")
        return response.status, None, body
    except (OSError, http.client.HTTPException, ValueError) as exc:
        if expired.is_set():
            raise _unavailable(f"fetching {target.url} took longer than the deadline") from exc
        raise _unavailable(f"cannot fetch {target.url}: {exc}") from exc
    finally:
        timer.cancel()
        conn.close()


def fetch(url: str, policy: FetchPolicy) -> bytes:
    """The image bytes at ``url`` under ``policy``; raises ImageError (UrlRefused, UrlInvalid)
    with the detail for logs and dead letters."""
    deadline = time.monotonic() + policy.timeout_s
    for _ in range(MAX_REDIRECTS + 1):
        target = vet(url, policy, deadline)
        status, location, body = _get(target, deadline, policy.max_bytes)
        if status in REDIRECTS:
            if not location:
                raise _unavailable(f"redirect from {url} without a location")
            try:
                url = urllib.parse.urljoin(url, location)
            except ValueError as exc:
                raise UrlInvalid(f"redirect from {url} to a malformed url: {exc}") from exc
            continue
        if status != 200:
            raise _unavailable(f"HTTP {status} for {url}")
        if len(body) > policy.max_bytes:
            raise ImageError(
                f"image at {url} exceeds {policy.max_bytes} bytes", ErrorKind.IMAGE_TOO_LARGE
            )
        return body
    raise _unavailable(f"more than {MAX_REDIRECTS} redirects from {url}")
