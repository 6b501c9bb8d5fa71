"""``stylestream demo``: the main job end to end on the embedded defaults.

Services up -> migrations -> topics -> a Fashion-MNIST catalogue produced to Kafka -> a real
worker process indexes it -> held-out test photos searched -> recall against the same
queries on raw pixels, computed in the same run.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import numpy as np
from kafka import TopicPartition
from sqlalchemy import Integer, func, select

from bench.catalog import ensure_model, fashion_mnist_catalogue, held_out_queries, roots_env
from bench.judging import recall_at_k, served_and_visual
from bench.processes import Process
from config import assembly
from config.kafka import KafkaConfig, kafka_consumer
from config.settings import Settings
from deploy.local import services
from deploy.local.process import free_port
from schemas.dead_letter import DeadLetter
from schemas.tables import product_attributes, products
from search import Filters
from stores.migrate import upgrade
from stores.postgres import PostgresRepository
from streams.producer import ProductProducer
from streams.topics import ensure_topics
from training.datasets import CLASSES, to_rgb


class DeadLetterCounter:
    """Counts dead letters for a set of product ids, from the offsets at construction."""

    def __init__(self, settings: Settings) -> None:
        self.consumer = kafka_consumer(settings, enable_auto_commit=False)
        parts = self.consumer.partitions_for_topic(settings.dead_letter_topic) or set()
        tps = [TopicPartition(settings.dead_letter_topic, p) for p in parts]
        self.consumer.assign(tps)
        for tp, offset in self.consumer.end_offsets(tps).items():
            self.consumer.seek(tp, offset)
        self.letters: list[DeadLetter] = []

    def poll(self) -> list[DeadLetter]:
        for records in self.consumer.poll(timeout_ms=200).values():
            self.letters += [DeadLetter.model_validate_json(r.value) for r in records]
        return self.letters

    def close(self) -> None:
        self.consumer.close()


def raw_pixel_top_k(gallery: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    g = gallery.reshape(len(gallery), -1).astype(np.float32) / 255.0
    q = queries.reshape(len(queries), -1).astype(np.float32) / 255.0
    d = (q**2).sum(1)[:, None] - 2 * q @ g.T + (g**2).sum(1)[None, :]
    return np.argsort(d, axis=1)[:, :k]


def count_indexed(repo: PostgresRepository, version: int) -> int:
    query = select(func.count()).select_from(products).where(products.c.version == version)
    with repo.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def _attribute_stats(repo: PostgresRepository, version: int) -> tuple[int, float]:
    """(products of this run carrying attributes, share whose fused category is the
    catalogue's)."""
    tagged = (
        select(func.count(func.distinct(product_attributes.c.product_id)))
        .join(products, products.c.product_id == product_attributes.c.product_id)
        .where(products.c.version == version)
    )
    agree = select(
        func.avg(
            (products.c.predicted_category == func.concat("category.", products.c.category)).cast(
                Integer
            )
        )
    ).where(products.c.version == version)
    with repo.engine.connect() as conn:
        return int(conn.execute(tagged).scalar_one()), float(conn.execute(agree).scalar_one() or 0)


def freshness_s(repo: PostgresRepository, version: int) -> np.ndarray:
    """Produce -> indexed (searchable) seconds of each product at ``version``, from the ledger."""
    query = select(products.c.indexed_at, products.c.produced_at).where(
        products.c.version == version, products.c.produced_at.is_not(None)
    )
    with repo.engine.connect() as conn:
        return np.array(
            [(r.indexed_at - r.produced_at).total_seconds() for r in conn.execute(query)]
        )


def run_demo(
    settings: Settings, n: int, n_queries: int, timeout: float, log: bool = True
) -> dict[str, Any]:
    """``log``: progress on stderr and a summary on stdout (off: stdout stays free for JSON)."""

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    started = time.monotonic()
    say("[1/6] local services (Kafka, Postgres, Milvus Lite) ...")
    services.up(settings)
    upgrade(settings.pg_dsn)
    ensure_topics(settings)
    ensure_model(settings)
    run_version = int(time.time() * 1000)  # every run supersedes the last one's versions
    out = settings.data_dir / "demo"
    say(f"[2/6] catalogue: {n} Fashion-MNIST train photos (titles/brands/prices synthetic)")
    cat = fashion_mnist_catalogue(out, n, version=run_version)
    queries = held_out_queries(out, n_queries)
    repo = PostgresRepository.from_dsn(settings.pg_dsn)
    dlq = DeadLetterCounter(settings)
    # a long-running worker may hold the default metrics port
    env = {**os.environ, "STYLESTREAM_METRICS_PORT": str(free_port()), **roots_env(settings, out)}
    worker = Process(["worker"], out / "worker.log", env)
    try:
        say(f"[3/6] producing {n} events to {settings.products_topic}")
        produce_started = time.monotonic()
        with ProductProducer(KafkaConfig.of(settings), settings.products_topic) as producer:
            for event in cat.events:
                producer.send(event)
        say("[4/6] worker indexing ...")
        ids = {e.product_id for e in cat.events}
        deadline = time.monotonic() + timeout
        indexed = dead = 0
        while time.monotonic() < deadline:
            indexed = count_indexed(repo, run_version)
            dead = sum(1 for d in dlq.poll() if d.product_id in ids)
            if indexed + dead >= n:
                break
            worker.check()
            time.sleep(0.5)
        index_seconds = time.monotonic() - produce_started
        say(f"      indexed {indexed}, dead-lettered {dead} in {index_seconds:.1f}s")
    finally:
        worker.stop()
        dlq.close()
    say(f"[5/6] searching {len(queries.labels)} held-out test photos (never in the catalogue)")
    service = assembly.open_search(settings)
    rgb = [to_rgb(img) for img in queries.images]
    wanted = [CLASSES[int(label)] for label in queries.labels]
    recall, visual_recall = served_and_visual(service, rgb, wanted, Filters(version=run_version))
    raw_top = raw_pixel_top_k(cat.images, queries.images, 10)
    raw_recall = recall_at_k(cat.labels[raw_top] == queries.labels[:, None])
    fresh = freshness_s(repo, run_version) * 1000
    with_attributes, category_agreement = _attribute_stats(repo, run_version)
    repo.close()
    service.targets.close()
    say("[6/6] done")
    report: dict[str, Any] = {
        "produced": n,
        "indexed": indexed,
        "dead_lettered": dead,
        "queries": len(queries.labels),
        "recall_at_10": round(recall, 4),
        "visual_only_recall_at_10": round(visual_recall, 4),
        "raw_pixel_recall_at_10": round(raw_recall, 4),
        "with_attributes": with_attributes,
        "fused_category_matches_catalogue": round(category_agreement, 4),
        "freshness_p50_ms": round(float(np.percentile(fresh, 50)), 1) if fresh.size else None,
        "freshness_p99_ms": round(float(np.percentile(fresh, 99)), 1) if fresh.size else None,
        "index_seconds": round(index_seconds, 2),
        "wall_seconds": round(time.monotonic() - started, 2),
        "model_version": service.processor.embedder.model_version,
        "milvus_uri": settings.milvus_uri,
        "catalogue": "Fashion-MNIST train photos (real); titles, brands, prices synthetic",
        "queries_from": "Fashion-MNIST t10k photos (held out)",
    }
    if log:
        print("")
        print(
            f"  produced {report['produced']}  indexed {report['indexed']}  "
            f"dead-lettered {report['dead_lettered']}  with attributes "
            f"{report['with_attributes']} (fused category = catalogue's for "
            f"{report['fused_category_matches_catalogue']:.1%})"
        )
        print(
            f"  recall@10 (same category in top 10): search {report['recall_at_10']:.3f} "
            f"(visual only {report['visual_only_recall_at_10']:.3f})  vs "
            f"raw pixels {report['raw_pixel_recall_at_10']:.3f}  over {report['queries']} queries"
        )
        print(
            f"  freshness produce->searchable: p50 {report['freshness_p50_ms']} ms, "
            f"p99 {report['freshness_p99_ms']} ms (a {n}-event burst, so queueing dominates)"
        )
        print(
            f"  wall {report['wall_seconds']}s; try: stylestream search --image {queries.paths[0]}"
        )
    return report
