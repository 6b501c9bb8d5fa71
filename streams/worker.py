"""``stylestream worker``: one Faust worker process (scale out by running N, up to partitions)."""

from __future__ import annotations

import logging

import faust

from config import assembly
from config.settings import Settings
from stores.dead_letters import PostgresOriginals
from streams.app import create_app
from streams.faults import Backoff, Dependencies, FaultMetrics, Heartbeat
from streams.handler import BatchHandler
from streams.health import serve_probes
from streams.metrics import WorkerMetrics
from streams.topics import ensure_topics

log = logging.getLogger(__name__)


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    topics = ensure_topics(settings)
    built = assembly.build(settings)
    metrics = WorkerMetrics()
    dependencies = Dependencies(
        {"postgres": built.repo.ping, "milvus": lambda: built.targets.serving().index.ping()},
        FaultMetrics(metrics.registry),
        Heartbeat(),
        Backoff(settings.retry_first_s, settings.retry_cap_s),
    )
    serve_probes(
        settings.metrics_port,
        settings.metrics_host,
        metrics.registry,
        dependencies,
        settings.worker_stall_s,
    )
    handler = BatchHandler(
        built.processor,
        built.writer,
        metrics,
        dependencies,
        retries=settings.store_retries,
        originals=PostgresOriginals(built.repo.engine),
        inline_bytes=settings.dead_letter_inline_bytes,
    )
    app = create_app(settings, handler)
    log.info("worker starting: topics %s, model %s", topics, built.processor.embedder.model_version)
    try:
        faust.Worker(app, loglevel=loglevel).execute_from_commandline()
    finally:
        handler.flush()  # what the last timer tick did not seal
        built.close()
