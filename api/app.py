"""The API's app factory: settings in, a FastAPI app out; stores open in its lifespan."""

from __future__ import annotations

import ipaddress
import logging
import secrets
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from api import errors, interactions, looks, modify, outfits, routes, text
from api.events import ImpressionEmitter, KafkaSender
from api.guards import BodyLimit, RateLimit
from api.metrics import ApiMetrics
from api.models import Health
from api.sessions import SessionConfig, Sessions
from api.state import ApiState, State
from config import assembly
from config.kafka import KafkaConfig
from config.settings import Settings
from search.batching import QueryBatcher
from stores.milvus import MilvusProbe
from stores.postgres import PostgresRepository
from stores.postgres_outfits import PostgresOutfits
from stores.summaries import SummaryCache

STATIC = Path(__file__).resolve().parent / "static"
log = logging.getLogger(__name__)


def session_key(settings: Settings) -> bytes:
    if settings.api_session_key is not None and settings.api_session_key.get_secret_value():
        return settings.api_session_key.get_secret_value().encode()
    log.warning("STYLESTREAM_API_SESSION_KEY is unset: sessions end when this process does")
    return secrets.token_bytes(32)


def open_state(settings: Settings, metrics: ApiMetrics) -> ApiState:
    repo = PostgresRepository.from_dsn(settings.pg_dsn)
    search = assembly.open_search(settings, repo)
    sender = KafkaSender(KafkaConfig.of(settings))
    return ApiState(
        settings,
        search,
        MilvusProbe(assembly.milvus_config(settings)),
        repo,
        assembly.api_image_limits(settings),
        sender,
        ImpressionEmitter(sender, settings.impressions_topic, metrics.impressions),
        Sessions(
            session_key(settings),
            SessionConfig(settings.api_session_ttl_s, settings.api_impression_ttl_s),
        ),
        QueryBatcher(
            search.by_queries, assembly.batch_config(settings), metrics.search_batch.observe
        ),
        SummaryCache(
            repo.get_summaries, settings.api_summary_cache_s, settings.api_summary_cache_items
        ),
        assembly.open_text_search(settings, repo, search),
        assembly.open_modify_search(settings, repo, search),
        PostgresOutfits(repo.engine),
        assembly.open_complete_the_look(settings, repo, search),
        tuple(k.get_secret_value().encode() for k in settings.api_keys if k.get_secret_value()),
        threading.BoundedSemaphore(settings.api_max_concurrent_decodes),
        threading.BoundedSemaphore(settings.api_max_concurrent_modifiers),
        threading.BoundedSemaphore(settings.api_max_concurrent_looks),
    )


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, ApiState]]:
        """The state lives in this lifespan's own scope (request.state), not on the app: a
        second lifespan of one app (a test harness, a server's reload) gets its own, and
        closing it leaves the first one's alone."""
        state = open_state(settings, metrics)
        try:
            yield {"api": state}
        finally:
            state.close()

    app = FastAPI(
        title="StyleStream search API",
        version="1.0.0",
        description="Visual fashion search over the products the StyleStream workers index.",
        lifespan=lifespan,
    )
    errors.install(app)
    metrics = ApiMetrics()
    metrics.install(app)
    app.add_middleware(BodyLimit, max_bytes=settings.api_max_body_bytes)
    app.add_middleware(  # outermost: a limited client costs nothing further
        RateLimit,
        rate=settings.api_rate_per_s,
        burst=settings.api_rate_burst,
        exempt=frozenset({"/healthz"}),  # readiness pings the stores: limited like the rest
        trusted_proxies=tuple(
            ipaddress.ip_network(n, strict=False) for n in settings.api_trusted_proxies
        ),
    )
    app.include_router(routes.router)
    app.include_router(text.router)
    app.include_router(modify.router)
    app.include_router(looks.router)
    app.include_router(outfits.reads)
    app.include_router(outfits.writes)
    app.include_router(interactions.router)

    @app.get("/healthz", summary="The process is alive")
    async def healthz() -> Health:  # on the event loop: busy search threads cannot starve it
        return Health(status="ok")

    @app.get("/readyz", summary="Milvus and Postgres are reachable", responses={503: {}})
    def readyz(state: State) -> JSONResponse:
        checks = {}
        for name, ping in (("milvus", state.milvus.ping), ("postgres", state.repo.ping)):
            try:
                ping()
                checks[name] = "ok"
            except Exception as exc:  # readiness reports, it does not raise
                checks[name] = f"unreachable: {type(exc).__name__}"
        if state.search.query_encoder is not None:
            try:
                state.search.query_encoder.check(state.search.targets.serving())
                checks["query_model"] = "ok"
            except Exception as exc:  # an incompatible pairing is not ready to serve
                checks["query_model"] = str(exc)[:300]
        ok = all(v == "ok" for v in checks.values())
        body = Health(status="ready" if ok else "not ready", checks=checks)
        return JSONResponse(body.model_dump(), status_code=200 if ok else 503)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
