"""``stylestream bench ingest``: the streaming worker against a plain batch script, one run.

- the peer: a plain script reads the same catalogue's PNG files, embeds them with the same
  base model at the same size and inserts them into the same Milvus (a throwaway collection):
  no Kafka, no Postgres, no box, tagger or thumbnails;
- a burst: N product events produced at once, one real worker indexes them: products/s from
  the first send to the last product in the Postgres ledger;
- steady streams at fixed event rates: produce -> searchable lag per product (the ledger's
  indexed_at minus the event's produced_at), p50/p99;
- scale-out: 1, 2, 3 workers in one group on the partitioned topic, the same burst each
  (bench/scaling.py).
JSON and a PNG plot.
"""

from __future__ import annotations

import json
import os
import platform
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from pymilvus import MilvusClient

from bench.catalog import ensure_model, fashion_mnist_catalogue, roots_env
from bench.demo import count_indexed, freshness_s
from bench.processes import Process, wait_or_fail
from bench.scaling import run_scaling
from config import assembly
from config.kafka import KafkaConfig
from config.settings import Settings
from deploy.local import services
from deploy.local.process import free_port
from processors.embedding import OnnxEmbedder
from processors.images import decode_image
from schemas.events import ProductUpsert
from stores.migrate import upgrade
from stores.postgres import PostgresRepository
from streams.producer import ProductProducer
from streams.topics import ensure_topics

STREAM_GOAL = 0.9  # of the batch script's products/s
LAG_GOAL_S = 1.0


@dataclass(frozen=True)
class IngestSizes:
    burst: int = 2000
    rates: tuple[float, ...] = (25.0, 50.0)
    steady_seconds: float = 30.0
    workers: tuple[int, ...] = (1, 2, 3)  # the scale-out check; () skips it


def batch_script(settings: Settings, events: Sequence[ProductUpsert]) -> dict[str, Any]:
    """Read, embed and insert ``events``' images with nothing else: the speed to match."""
    embedder = OnnxEmbedder(
        assembly.base_model_file(settings), settings.embed_batch_size, settings.onnx_threads
    )
    client = MilvusClient(settings.milvus_uri)
    name = f"bench_ingest_{uuid.uuid4().hex[:8]}"
    client.create_collection(name, dimension=embedder.dim, id_type="string", max_length=64)
    try:
        started = time.perf_counter()
        step = settings.embed_batch_size
        for first in range(0, len(events), step):
            chunk = events[first : first + step]
            paths = [Path(str(e.image.path)) for e in chunk]
            rgb = [decode_image(p.read_bytes(), assembly.image_limits(settings)) for p in paths]
            vectors = embedder.embed(rgb)
            client.insert(
                name,
                [
                    {"id": e.product_id, "vector": v.tolist()}
                    for e, v in zip(chunk, vectors, strict=True)
                ],
            )
        client.flush(name)
        seconds = time.perf_counter() - started
    finally:
        client.drop_collection(name)
        client.close()
    return {
        "products": len(events),
        "seconds": round(seconds, 2),
        "products_per_s": round(len(events) / seconds, 1),
        "does": "PNG read + decode, embed (the base model, batches of "
        f"{settings.embed_batch_size}), insert into {settings.milvus_uri}",
    }


def _produce(settings: Settings, events: Sequence[ProductUpsert], rate: float | None) -> float:
    """Sends ``events`` (at ``rate``/s, or all at once); returns the first send's time."""
    started = time.monotonic()
    with ProductProducer(KafkaConfig.of(settings), settings.products_topic) as producer:
        for i, event in enumerate(events):
            if rate:
                delay = started + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            producer.send(event)
    return started


def streamed(
    settings: Settings,
    events: Sequence[ProductUpsert],
    version: int,
    rate: float | None,
    workers: Sequence[Process],
    repo: PostgresRepository,
) -> dict[str, Any]:
    started = _produce(settings, events, rate)
    wait_or_fail(lambda: count_indexed(repo, version) >= len(events), 600, "ingest", workers)
    seconds = time.monotonic() - started
    lags = freshness_s(repo, version)
    return {
        "products": len(events),
        "rate_per_s": rate or "burst",
        "seconds": round(seconds, 2),
        "products_per_s": round(len(events) / seconds, 1),
        "lag_p50_s": round(float(np.percentile(lags, 50)), 3),
        "lag_p99_s": round(float(np.percentile(lags, 99)), 3),
        "lags_s": [round(float(x), 3) for x in np.sort(lags)],
    }


def run_ingest_bench(
    settings: Settings, sizes: IngestSizes, out_dir: Path, log: Callable[[str], None] = print
) -> dict[str, Any]:
    began = time.monotonic()
    services.up(settings)
    upgrade(settings.pg_dsn)
    ensure_topics(settings)
    ensure_model(settings)
    data = settings.data_dir / "bench" / "ingest"
    version = int(time.time() * 1000)
    catalogue = fashion_mnist_catalogue(data, sizes.burst, version=version)
    log(f"[ingest] the batch script on {sizes.burst} products")
    batch = batch_script(settings, catalogue.events)
    env = {**os.environ, "STYLESTREAM_METRICS_PORT": str(free_port()), **roots_env(settings, data)}
    worker = Process(["worker"], data / "worker.log", env)
    repo = PostgresRepository.from_dsn(settings.pg_dsn)
    try:
        warm = fashion_mnist_catalogue(data, 64, version=version - 1, seed=1).events
        streamed(settings, warm, version - 1, None, [worker], repo)  # the worker's start-up
        log(f"[ingest] a burst of {sizes.burst} products through the worker")
        burst = streamed(settings, catalogue.events, version, None, [worker], repo)
        steady = []
        for i, rate in enumerate(sizes.rates):
            n = int(rate * sizes.steady_seconds)
            log(f"[ingest] {n} events at {rate:.0f}/s")
            events = fashion_mnist_catalogue(data, n, version=version + 1 + i, seed=2 + i).events
            steady.append(streamed(settings, events, version + 1 + i, rate, [worker], repo))
    finally:
        worker.stop()
    try:
        scale = run_scaling(
            settings,
            env,
            data,
            sizes.workers,
            sizes.burst,
            lambda evs, v, ws: streamed(settings, evs, v, None, ws, repo),
            log,
        )
    finally:
        repo.close()
    report = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "catalogue": "Fashion-MNIST train photos (real); titles, brands, prices synthetic",
        "batch_script": batch,
        "burst": {k: v for k, v in burst.items() if k != "lags_s"},
        "steady": steady,
        "partitions": settings.topic_partitions,
        "scaling": scale,
        "done_when": {
            "stream_share_of_batch": round(burst["products_per_s"] / batch["products_per_s"], 3),
            "stream_met": burst["products_per_s"] >= STREAM_GOAL * batch["products_per_s"],
            "lag_p99_s": {str(s["rate_per_s"]): s["lag_p99_s"] for s in steady},
            "lag_met": all(s["lag_p99_s"] <= LAG_GOAL_S for s in steady),
        },
        "wall_seconds": round(time.monotonic() - began, 1),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "ingest.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, out_dir / "ingest.png")
    return report


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right, scale) = plt.subplots(1, 3, figsize=(15, 4.5))
    rates = [report["batch_script"]["products_per_s"], report["burst"]["products_per_s"]]
    left.bar(["batch script", "streaming worker"], rates, color=["grey", "tab:blue"])
    left.axhline(STREAM_GOAL * rates[0], color="green", ls=":", label=f"goal {STREAM_GOAL}x")
    left.set_ylabel("products / s")
    left.legend(fontsize=8)
    for s in report["steady"]:
        lags = np.asarray(s["lags_s"])
        right.plot(lags, np.linspace(0, 1, len(lags)), label=f"{s['rate_per_s']:.0f} events/s")
    right.axvline(LAG_GOAL_S, color="green", ls=":", label="p99 goal 1 s")
    right.set_xlabel("produce -> searchable (s)")
    right.set_ylabel("share of products")
    right.legend(fontsize=8)
    counts = [r["workers"] for r in report.get("scaling", [])]
    if counts:
        rates = [r["products_per_s"] for r in report["scaling"]]
        scale.plot(counts, rates, "o-", label="measured")
        scale.plot(counts, [rates[0] * c for c in counts], ":", color="grey", label="linear")
        scale.set_xticks(counts)
    scale.set_xlabel(f"workers (one group, {report.get('partitions', '?')} partitions)")
    scale.set_ylabel("products / s (burst)")
    scale.legend(fontsize=8)
    fig.suptitle("Ingest: the streaming worker against a plain batch script, one run")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
