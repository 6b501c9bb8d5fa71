"""Prometheus metrics of the API: requests, latency and errors by route template."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)


class ApiMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.requests = Counter(
            "stylestream_api_requests",
            "HTTP requests",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "stylestream_api_request_seconds",
            "HTTP request latency",
            ["method", "route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.errors = Counter(
            "stylestream_api_errors",
            "Responses with status >= 400",
            ["route", "status"],
            registry=self.registry,
        )
        self.search_batch = Histogram(
            "stylestream_api_search_batch_size",
            "Image queries answered by one batched model call",
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=self.registry,
        )
        self.impressions = Counter(
            "stylestream_api_impressions",
            "Search impressions by outcome (queued, sent, dropped, failed)",
            ["outcome"],
            registry=self.registry,
        )

    def install(self, app: FastAPI) -> None:
        @app.middleware("http")
        async def observe(
            request: Request, call_next: Callable[[Request], Awaitable[Response]]
        ) -> Response:
            started = time.perf_counter()
            response = await call_next(request)
            route = getattr(request.scope.get("route"), "path", "unmatched")
            self.latency.labels(request.method, route).observe(time.perf_counter() - started)
            self.requests.labels(request.method, route, str(response.status_code)).inc()
            if response.status_code >= 400:
                self.errors.labels(route, str(response.status_code)).inc()
            return response

        @app.get("/metrics", include_in_schema=False)
        def metrics() -> Response:
            return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)
