"""End-to-end HTTP load on the search API: N client threads for T seconds, each sending
searches (image uploads, JSON text queries) over a kept-alive connection. Bounded in time and
count; loopback only."""

from __future__ import annotations

import http.client
import threading
import time
import uuid
from dataclasses import dataclass

import httpx
import numpy as np

MAX_REQUESTS = 200_000


@dataclass(frozen=True)
class LoadResult:
    concurrency: int
    seconds: float
    requests: int
    errors: int
    p50_ms: float
    p99_ms: float
    qps: float
    error_examples: list[str]


def multipart(image: bytes, k: int) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="k"\r\n\r\n{k}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="q.png"\r\n'
            f"Content-Type: image/png\r\n\r\n"
        ).encode()
        + image
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


class Uploader:
    """One kept-alive connection posting searches to ``path``; a new one after a failed
    request."""

    def __init__(self, host: str, port: int, path: str = "/v1/search/upload") -> None:
        self.host, self.port, self.path = host, port, path
        self.conn = http.client.HTTPConnection(host, port, timeout=30)

    def post(self, body: bytes, ctype: str) -> tuple[bool, str]:
        """(answered 200, what happened)."""
        try:
            self.conn.request("POST", self.path, body=body, headers={"Content-Type": ctype})
            resp = self.conn.getresponse()
            resp.read()
            return resp.status == 200, f"HTTP {resp.status}"
        except (OSError, http.client.HTTPException) as exc:
            self.conn.close()
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            return False, f"{type(exc).__name__}: {exc}"

    def close(self) -> None:
        self.conn.close()


def run_load(
    host: str,
    port: int,
    images: list[bytes],
    concurrency: int = 16,
    seconds: float = 60.0,
    k: int = 10,
) -> LoadResult:
    """Image uploads."""
    bodies = [multipart(img, k) for img in images]
    return run_requests(host, port, "/v1/search/upload", bodies, concurrency, seconds)


def run_requests(
    host: str,
    port: int,
    path: str,
    bodies: list[tuple[bytes, str]],
    concurrency: int = 16,
    seconds: float = 60.0,
) -> LoadResult:
    """``concurrency`` closed-loop clients posting ``bodies`` (body, content type) in turn."""
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError("load tests target loopback only")
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client(worker: int) -> None:
        uploader = Uploader(host, port, path)
        i = worker
        while time.monotonic() < stop_at and len(latencies) + len(errors) < MAX_REQUESTS:
            body, ctype = bodies[i % len(bodies)]
            i += concurrency
            started = time.perf_counter()
            ok, detail = uploader.post(body, ctype)
            elapsed = time.perf_counter() - started
            with lock:
                (latencies.append(elapsed) if ok else errors.append(detail))
        uploader.close()

    threads = [threading.Thread(target=client, args=(w,)) for w in range(concurrency)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - started
    lat = np.array(latencies) * 1000 if latencies else np.array([0.0])
    return LoadResult(
        concurrency=concurrency,
        seconds=round(wall, 1),
        requests=len(latencies) + len(errors),
        errors=len(errors),
        p50_ms=round(float(np.percentile(lat, 50)), 1),
        p99_ms=round(float(np.percentile(lat, 99)), 1),
        qps=round(len(latencies) / wall, 1),
        error_examples=sorted(set(errors))[:5],
    )


class SearchLoad:
    """Searches through the API from a thread while something else happens (a re-index),
    counting every one that fails and the model versions that answered."""

    def __init__(self, base_url: str, images: list[bytes]) -> None:
        self.base_url = base_url
        self.images = images[:50]
        self.sent = self.failed = 0
        self.versions: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> SearchLoad:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=30) as http:
            while not self._stop.is_set() and self.sent < MAX_REQUESTS:
                image = self.images[self.sent % len(self.images)]
                self.sent += 1
                try:
                    r = http.post(
                        "/v1/search/upload", files={"image": ("q.png", image, "image/png")}
                    )
                    if r.status_code != 200:
                        self.failed += 1
                    else:
                        self.versions.add(r.json()["model_version"])
                except httpx.HTTPError:
                    self.failed += 1
