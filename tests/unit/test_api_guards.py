"""The API's guards with no service: the body limit (declared or streamed) and the per-client
rate limit, in front of a small app that records what reached it."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from pydantic import BaseModel

from api.guards import BodyLimit, RateLimit, client_address, client_key


class Item(BaseModel):
    text: str


def app_with_guards(max_bytes: int, rate: float, burst: int) -> tuple[FastAPI, list[int]]:
    app = FastAPI()
    seen: list[int] = []

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        body = await request.body()
        seen.append(len(body))
        return {"bytes": len(body)}

    @app.post("/model")
    def model(item: Item) -> dict[str, int]:
        return {"bytes": len(item.text)}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.add_middleware(BodyLimit, max_bytes=max_bytes)
    app.add_middleware(RateLimit, rate=rate, burst=burst, exempt=frozenset({"/healthz"}))
    return app, seen


def test_a_body_over_the_limit_is_413_before_the_route_reads_it() -> None:
    app, seen = app_with_guards(max_bytes=1000, rate=0, burst=1)
    with TestClient(app) as client:
        assert client.post("/echo", content=b"x" * 1000).json() == {"bytes": 1000}
        r = client.post("/echo", content=b"x" * 5000)
        assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
            for _ in range(50):
                yield b"y" * 100

        r = client.post("/echo", content=chunks())
        assert r.status_code == 413
        # a route whose body FastAPI parses: still 413, not its "error parsing the body" 400
        r = client.post("/model", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413
    assert seen == [1000]  # neither large body reached the route


def test_each_client_gets_its_rate_and_probes_are_exempt() -> None:
    app, _ = app_with_guards(max_bytes=10_000, rate=1.0, burst=3)
    with TestClient(app) as client:
        codes = [client.post("/echo", content=b"").status_code for _ in range(5)]
        assert codes == [200, 200, 200, 429, 429]
        r = client.post("/echo", content=b"")
        assert r.json()["error"]["code"] == "rate_limited" and int(r.headers["retry-after"]) >= 1
        assert all(client.get("/healthz").status_code == 200 for _ in range(10))


def test_buckets_refill_and_stay_bounded() -> None:
    now = [0.0]
    limit = RateLimit(FastAPI(), rate=2.0, burst=2, max_clients=3, clock=lambda: now[0])
    assert [limit.wait_s("a") for _ in range(3)] == [0.0, 0.0, 0.5]
    now[0] = 0.5  # one token back after half a second
    assert limit.wait_s("a") == 0.0 and limit.wait_s("a") > 0
    for client in ("b", "c", "d", "e"):
        limit.wait_s(client)
    assert len(limit._buckets) == 3 and "a" not in limit._buckets  # the least recent dropped
    assert (
        client_key("2001:db8:1:2::5") == client_key("2001:db8:1:2:ffff::9") == ("2001:db8:1:2::/64")
    )
    assert client_key("::ffff:10.0.0.1") == "10.0.0.1" and client_key("testclient") == "testclient"


def test_forwarded_for_is_read_only_from_trusted_proxies() -> None:
    proxies = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8"))

    def seen(peer: str, *forwarded: str) -> str:
        headers = [(b"x-forwarded-for", f.encode()) for f in forwarded]
        return client_address({"client": (peer, 1), "headers": headers}, proxies)

    assert seen("203.0.113.9", "198.51.100.1") == "203.0.113.9"  # a client's own claim
    assert seen("10.1.2.3", "198.51.100.1") == "198.51.100.1"  # the proxy's word
    # the right-most untrusted hop: what the client wrote before it is not read
    assert seen("10.1.2.3", "1.2.3.4, 198.51.100.1, 10.9.9.9") == "198.51.100.1"
    assert seen("10.1.2.3", "1.2.3.4", "198.51.100.1") == "198.51.100.1"  # two headers
    assert seen("::ffff:10.1.2.3", "198.51.100.7") == "198.51.100.7"
    assert seen("fd00::1", "2001:db8::5") == "2001:db8::5"
    assert seen("10.1.2.3") == "10.1.2.3"  # no header: the proxy itself
    assert seen("10.1.2.3", "198.51.100.1:5678") == "198.51.100.1"  # ports dropped
    assert seen("10.1.2.3", "[2001:db8::5]:443") == "2001:db8::5"
    # text that is no address (a client's, passed along): never a bucket of its own
    assert seen("10.1.2.3", "1.2.3.4, evil-unique-9") == "10.1.2.3"
    assert seen("10.1.2.3", "10.4.4.4") == "10.1.2.3"  # only proxies: the peer
    assert client_address({"client": ("10.1.2.3", 1), "headers": []}) == "10.1.2.3"


def test_clients_behind_a_trusted_proxy_get_their_own_buckets() -> None:
    app = FastAPI()

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        return {"status": "ok"}

    proxy = (ipaddress.ip_network("10.0.0.0/8"),)
    app.add_middleware(RateLimit, rate=0.001, burst=1, trusted_proxies=proxy)
    with TestClient(app, client=("10.0.0.1", 50000)) as client:
        first = client.get("/ping", headers={"x-forwarded-for": "198.51.100.1"})
        again = client.get("/ping", headers={"x-forwarded-for": "198.51.100.1"})
        other = client.get("/ping", headers={"x-forwarded-for": "198.51.100.2"})
    assert (first.status_code, again.status_code, other.status_code) == (200, 429, 200)
