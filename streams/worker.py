"""``stylestream worker``: one Faust worker process (scale out by running N, up to partitions)."""

from __future__ import annotations

import logging

import faust

from config import assembly
from config.settings import Settings
from streams.app import create_app
from streams.handler import BatchHandler
from streams.metrics import WorkerMetrics
from streams.topics import ensure_topics

log = logging.getLogger(__name__)


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    topics = ensure_topics(settings)
    built = assembly.build(settings)
    metrics = WorkerMetrics()
    metrics.serve(settings.metrics_port, settings.metrics_host)
    handler = BatchHandler(built.processor, built.writer, metrics, retries=settings.store_retries)
    app = create_app(settings, handler)
    log.info("worker starting: topics %s, model %s", topics, built.processor.embedder.model_version)
    try:
        faust.Worker(app, loglevel=loglevel).execute_from_commandline()
    finally:
        handler.flush()  # what the last timer tick did not seal
        built.close()
