"""``stylestream worker``: one Faust worker process (scale out by running N, up to partitions)."""

from __future__ import annotations

import logging
import socket
import time

import faust
from kafka.errors import KafkaError

from config import assembly
from config.settings import Settings
from stores.dead_letters import PostgresOriginals
from stores.postgres_outfits import PostgresOutfits
from streams.app import create_app
from streams.faults import Backoff, Dependencies, FaultMetrics, Heartbeat
from streams.handler import BatchHandler
from streams.health import serve_probes
from streams.metrics import WorkerMetrics
from streams.outfits import OutfitHandler
from streams.topics import ensure_topics

log = logging.getLogger(__name__)


def wait_for_broker(bootstrap: str, timeout_s: float = 120.0) -> None:
    """Until one bootstrap address accepts a connection: Faust's start exits on a broker that
    is down (a restart, a rolling upgrade) instead of waiting for it, as it does later."""
    deadline = time.monotonic() + timeout_s
    addresses = [a.strip().rsplit(":", 1) for a in bootstrap.split(",") if a.strip()]
    while True:
        for host, port in addresses:
            try:
                socket.create_connection((host, int(port)), timeout=2.0).close()
                return
            except OSError:
                continue
        if time.monotonic() > deadline:
            return  # let Faust report it
        log.warning("no Kafka broker answers at %s yet: waiting", bootstrap)
        time.sleep(1.0)


def topics_when_up(settings: Settings, timeout_s: float = 120.0) -> dict[str, int]:
    """``ensure_topics`` once a broker answers, again while it drops the connection (a broker
    restarting as the worker starts: seen in the chaos test), up to ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    attempt = 0
    while True:
        wait_for_broker(settings.kafka_bootstrap, max(1.0, deadline - time.monotonic()))
        try:
            return ensure_topics(settings)
        except KafkaError as exc:
            if time.monotonic() > deadline:
                raise
            attempt += 1
            log.warning("Kafka dropped the topic check (%s): again", exc)
            time.sleep(min(5.0, 0.5 * 2**attempt))


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    topics = topics_when_up(settings)
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
    # outfits need Postgres alone: a Milvus outage is no reason to doubt an outfit's error
    # (the heartbeat is shared: one executor runs both agents' batches, one at a time)
    outfit_dependencies = Dependencies(
        {"postgres": built.repo.ping},
        dependencies.metrics,
        dependencies.heartbeat,
        Backoff(settings.retry_first_s, settings.retry_cap_s),
    )
    outfits = OutfitHandler(
        PostgresOutfits(built.repo.engine),
        metrics,
        outfit_dependencies,
        retries=settings.store_retries,
        originals=PostgresOriginals(built.repo.engine),
        inline_bytes=settings.dead_letter_inline_bytes,
    )
    app = create_app(settings, handler, outfits)
    log.info("worker starting: topics %s, model %s", topics, built.processor.embedder.model_version)
    wait_for_broker(settings.kafka_bootstrap)
    try:
        faust.Worker(app, loglevel=loglevel).execute_from_commandline()
    finally:
        handler.flush()  # what the last timer tick did not seal
        built.close()
