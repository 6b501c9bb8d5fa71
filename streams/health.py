"""The worker's HTTP side: Prometheus metrics, and the probes Kubernetes asks. ``/healthz``
is the batch loop's heartbeat (not the HTTP thread's), ``/readyz`` says whether the worker is
waiting for a dependency."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from streams.faults import Dependencies


def serve_probes(
    port: int,
    host: str,
    registry: CollectorRegistry,
    dependencies: Dependencies,
    stall_s: float,
) -> ThreadingHTTPServer | None:
    """Serves on a daemon thread; ``port`` 0 serves nothing."""
    if not port:
        return None

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._answer(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                age = dependencies.heartbeat.age_s()
                ok = dependencies.heartbeat.alive(stall_s)
                self._answer(200 if ok else 503, f"batch loop beat {age:.1f}s ago\n".encode())
            elif path == "/readyz":
                waiting = dependencies.waiting
                body = b"waiting for a dependency\n" if waiting else b"ready\n"
                self._answer(503 if waiting else 200, body)
            else:
                self._answer(404, b"not found\n")

        def _answer(self, status: int, body: bytes, kind: str = "text/plain") -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # probes every few seconds: not worth a log line

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="stylestream-probes", daemon=True).start()
    return server
