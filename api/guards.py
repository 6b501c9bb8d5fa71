"""Pure ASGI guards in front of every route: a request body limit enforced while the body
streams in (413 before a large body is read or parsed), and a per-client rate limit (429 with
Retry-After). Both answer with the API's JSON error body."""

from __future__ import annotations

import ipaddress
import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.exceptions import HTTPException

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def _error(send: Send, status: int, code: str, message: str, headers: list[Any]) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


class _TooLarge(HTTPException):
    """Raised from ``receive``: FastAPI lets an HTTPException out of its body parsing (any
    other exception there becomes a 400), and the app's error handler answers it."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"request body over {max_bytes} bytes")


class BodyLimit:
    """413 for a body over ``max_bytes``: from Content-Length before reading, or as soon as the
    streamed body passes the limit (chunked uploads declare no length)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        message = f"request body over {self.max_bytes} bytes"
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await _error(send, 413, "request_too_large", message, [])
            return
        received = 0
        started = False

        async def counting() -> Message:
            nonlocal received
            msg = await receive()
            if msg["type"] == "http.request":
                received += len(msg.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge(self.max_bytes)
            return msg

        async def watching(msg: Message) -> None:
            nonlocal started
            started = started or msg["type"] == "http.response.start"
            await send(msg)

        try:
            await self.app(scope, counting, watching)
        except _TooLarge:
            if not started:
                await _error(send, 413, "request_too_large", message, [])


def client_key(host: str) -> str:
    """Whose bucket a request takes: its address, or its /64 for IPv6 (one subscriber gets a
    whole /64, so per-address buckets would be unlimited)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # an IPv4 client seen through a dual-stack socket
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_FORWARDED_HOPS = 16


def client_address(scope: Scope, trusted: tuple[Network, ...] = ()) -> str:
    """The address a request came from: its peer, unless the peer is a trusted proxy; then
    X-Forwarded-For read from the right, skipping trusted proxies (whatever a client wrote
    to the left of the first untrusted hop is its own claim and is not read)."""
    peer = str((scope.get("client") or ("unknown", 0))[0])
    if not trusted or not _within(peer, trusted):
        return peer
    forwarded = b",".join(v for k, v in scope.get("headers", []) if k == b"x-forwarded-for")
    hops = [h.strip() for h in forwarded.decode("latin-1").split(",")][-MAX_FORWARDED_HOPS:]
    for hop in reversed([h for h in hops if h]):
        address = _address(hop)
        if address is None:  # not an address: a proxy that passed the client's text along
            return peer
        if not _within(address, trusted):
            return address
    return peer


def _address(hop: str) -> str | None:
    """An X-Forwarded-For entry as a bare address ("1.2.3.4:80", "[::1]:443" lose the port)."""
    if hop.startswith("["):
        hop = hop[1:].split("]", 1)[0]
    elif hop.count(":") == 1:
        hop = hop.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(hop))
    except ValueError:
        return None


def _within(host: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in n for n in networks)


class RateLimit:
    """A token bucket per client address (``rate`` requests a second, bursts of ``burst``);
    at most ``max_clients`` buckets are kept (least recently seen dropped first), so memory
    stays bounded whatever the number of clients. ``exempt`` paths (probes) are never limited.
    Behind a proxy, ``trusted_proxies`` says whose X-Forwarded-For to believe."""

    def __init__(
        self,
        app: ASGIApp,
        rate: float,
        burst: int,
        exempt: frozenset[str] = frozenset(),
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        trusted_proxies: tuple[Network, ...] = (),
    ) -> None:
        self.app = app
        self.trusted_proxies = trusted_proxies
        self.rate = rate
        self.burst = burst
        self.exempt = exempt
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def wait_s(self, client: str) -> float:
        """0 when the request may go now (a token taken), else seconds until one is due."""
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.pop(client, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate)
            wait = 0.0 if tokens >= 1 else (1 - tokens) / self.rate
            self._buckets[client] = (tokens - 1 if wait == 0 else tokens, now)
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
        return wait

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.rate <= 0 or scope.get("path") in self.exempt:
            await self.app(scope, receive, send)
            return
        wait = self.wait_s(client_key(client_address(scope, self.trusted_proxies)))
        if wait > 0:
            retry = str(max(1, math.ceil(wait))).encode()
            message = "too many requests from this client: retry later"
            await _error(send, 429, "rate_limited", message, [(b"retry-after", retry)])
            return
        await self.app(scope, receive, send)
