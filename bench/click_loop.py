"""`stylestream eval clicks` (and the demo's last step): the whole click loop on real services.

A catalogue streamed through Kafka and a real worker -> SIMULATED shoppers search the real API
and click through its endpoint -> a real `stylestream mine` process mines pairs -> a head is
trained and registered -> `reindex` switches to it while searches and product updates keep
coming -> the same held-out sessions are judged before and after.

Everything runs in its own database, collections, topics and consumer groups, so the numbers
never depend on what a dev stack already holds.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import httpx
from sqlalchemy import func, select

from bench.api_load import SearchLoad
from bench.catalog import ensure_model, fashion_mnist_catalogue, roots_text
from bench.judging import judge, served_and_visual
from bench.processes import Process, wait_or_fail
from bench.simulator import ShopperModel, SimulatedQuery, png_bytes, relevance, simulate
from config import assembly
from config.kafka import KafkaConfig, kafka_admin
from config.settings import Settings
from deploy.local import services
from deploy.local.postgres import PostgresService
from deploy.local.process import free_port
from schemas.tables import products, training_pairs
from stores.migrate import upgrade
from stores.milvus import connect, drop_prefixed
from stores.pairs import PairRepository
from stores.postgres import PostgresRepository
from stores.registry import ServingRegistry
from streams.producer import ProductProducer
from streams.topics import ensure_topics, topic_specs
from training.click_head import train_embedding
from training.datasets import CLASSES, load_split, to_rgb
from training.embedding_head import HeadConfig

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class LoopSizes:
    products: int = 2000
    train_sessions: int = 480
    eval_sessions: int = 100
    queries_per_session: int = 10
    reindex_updates: int = 200  # product updates produced while the re-index runs
    concurrency: int = 2
    seed: int = 0

    @classmethod
    def small(cls) -> LoopSizes:
        return cls(300, 40, 10, 5, 40)


def query_pool(part: str) -> list[SimulatedQuery]:
    """Fashion-MNIST test photos (never in the catalogue): the first half for the sessions that
    teach, the second for the held-out sessions that judge."""
    images, labels = load_split("t10k")
    rows = range(0, 5000) if part == "train" else range(5000, len(images))
    return [SimulatedQuery(images[i], CLASSES[int(labels[i])]) for i in rows]


def isolated(settings: Settings, run: str) -> dict[str, str]:
    """Settings overrides giving this run its own database, collection, topics and groups."""
    return {
        "pg_database": f"eval_clicks_{run}",
        "milvus_collection": f"eval_clicks_{run}",
        "milvus_alias": f"eval_clicks_{run}_serving",
        "topic_prefix": f"stylestream.eval-clicks-{run}.",
        "app_id": f"eval-clicks-worker-{run}",
        "miner_app_id": f"eval-clicks-miner-{run}",
        "metrics_port": str(free_port()),
        "miner_metrics_port": str(free_port()),
        "api_port": str(free_port()),
        "data_dir": str(settings.data_dir.resolve()),
        "milvus_index": "FLAT",
        "click_window_s": "3600",
        "allowed_image_roots": roots_text(settings, catalogue_dir(settings)),
    }


def catalogue_dir(settings: Settings) -> Path:
    return settings.data_dir / "demo"


def visual_recall(settings: Settings, queries: Sequence[SimulatedQuery]) -> float:
    """Recall@10 of the serving collection's visual stage alone (no colour, no attributes)."""
    service = assembly.open_search(settings)
    try:
        _, visual = served_and_visual(
            service,
            [to_rgb(q.image) for q in queries],
            [q.category for q in queries],
        )
        return round(visual, 4)
    finally:
        service.targets.close()


def _count(repo: PostgresRepository, query: Any) -> int:
    with repo.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def run_click_loop(
    settings: Settings, sizes: LoopSizes, say: Callable[[str], None], keep: bool = False
) -> dict[str, Any]:
    started = time.monotonic()
    if threading.current_thread() is threading.main_thread():  # SIGTERM: stop the children too
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    run = uuid.uuid4().hex[:8]
    overrides = isolated(settings, run)
    # the caller's STYLESTREAM_* settings (brokers, ports, model dir) plus this run's own
    env = {**os.environ, **{f"STYLESTREAM_{k.upper()}": v for k, v in overrides.items()}}
    s = Settings(**cast(dict[str, Any], overrides))
    out = settings.data_dir / "click-loop" / run
    say(f"[1/8] services, database {s.pg_database}, topics {s.topic_prefix}*")
    services.up(settings)
    pg = PostgresService(settings)
    pg.ensure_database(s.pg_database)
    upgrade(s.pg_dsn)
    ensure_topics(s)
    ensure_model(s)
    repo = PostgresRepository.from_dsn(s.pg_dsn)
    registry = ServingRegistry(repo.engine)
    procs: list[Process] = []
    report: dict[str, Any] = {"sizes": sizes.__dict__, "run": run}
    try:
        worker = Process(["worker", "--loglevel", "warning"], out / "worker.log", env)
        api = Process(["api"], out / "api.log", env)
        miner = Process(["mine", "--loglevel", "warning"], out / "miner.log", env)
        procs = [worker, api, miner]
        say(f"[2/8] {sizes.products} Fashion-MNIST products -> Kafka -> worker")
        cat = fashion_mnist_catalogue(catalogue_dir(settings), sizes.products)
        with ProductProducer(KafkaConfig.of(s), s.products_topic) as producer:
            for event in cat.events:
                producer.send(event)
        count = select(func.count()).select_from(products)
        wait_or_fail(lambda: _count(repo, count) >= sizes.products, 900, "indexing", procs)
        counts: dict[str, int] = {}
        for e in cat.events:
            counts[e.category] = counts.get(e.category, 0) + 1
        base_url = f"http://127.0.0.1:{s.api_port}"
        http = httpx.Client(base_url=base_url, timeout=60)

        def ready() -> bool:
            try:
                return http.get("/readyz").status_code == 200
            except httpx.HTTPError:
                return False

        wait_or_fail(ready, 120, "API ready", procs)
        model = ShopperModel()
        say(
            f"[3/8] {sizes.train_sessions} SIMULATED sessions x {sizes.queries_per_session} queries"
        )
        t0 = time.monotonic()
        logs = simulate(
            http,
            query_pool("train"),
            sizes.train_sessions,
            sizes.queries_per_session,
            seed=sizes.seed,
            model=model,
            concurrency=sizes.concurrency,
        )
        clicks = sum(len(log.clicks) for log in logs)
        report["simulation"] = {
            "sessions": len(logs),
            "searches": sum(len(log.searches) for log in logs),
            "clicks": clicks,
            "failed_queries": sum(log.failed_queries for log in logs),
            "seconds": round(time.monotonic() - t0, 1),
        }
        say(f"      {clicks} clicks; [4/8] waiting for the miner's pairs")
        pairs = select(func.count()).select_from(training_pairs)
        wait_or_fail(lambda: _count(repo, pairs) >= clicks, 300, "mining", procs)
        report["pairs_mined"] = _count(repo, pairs)
        say("[5/8] held-out SIMULATED sessions on the base model")
        held_out = query_pool("eval")

        def evaluate() -> dict[str, float]:
            judged = simulate(
                http,
                held_out,
                sizes.eval_sessions,
                sizes.queries_per_session,
                seed=sizes.seed + 1000,
                model=model,
                concurrency=sizes.concurrency,
            )
            searches = [sr for log in judged for sr in log.searches]
            scores = judge(searches, counts, relevance)
            # The same queries ranked by the visual stage alone (in process, same pointer):
            # what the embedding itself contributes, apart from colour and attributes.
            scores["visual_only_recall_at_10"] = visual_recall(s, [q for q, _ in searches])
            return scores

        report["base"] = evaluate()
        say(f"      {report['base']}; [6/8] training a head on the mined pairs")
        t0 = time.monotonic()
        taught = {log.session_id for log in logs}  # never the held-out sessions' clicks
        trained = train_embedding(
            registry,
            repo,
            (p for p in PairRepository(repo.engine).since(EPOCH) if p["session_id"] in taught),
            s.models_path,
            HeadConfig(calibration_top=s.rerank_candidates),
        )
        report["model"] = {
            "model_version": trained.model_version,
            "dim": trained.dim,
            "metrics": {k: v for k, v in trained.metrics.items() if k != "history"},
            "lineage": trained.lineage,
            "score_calibration": trained.score_calibration,
            "train_seconds": round(time.monotonic() - t0, 1),
        }
        say(f"[7/8] re-index to {trained.model_version} under search load and product updates")
        updates = [
            e.model_copy(update={"version": e.version + 1, "title": e.title + " (updated)"})
            for e in cat.events[: sizes.reindex_updates]
        ]

        def produce_updates() -> None:
            with ProductProducer(KafkaConfig.of(s), s.products_topic) as producer:
                for event in updates:
                    producer.send(event)
                    time.sleep(0.01)

        with SearchLoad(base_url, [png_bytes(q.image) for q in held_out[:50]]) as load:
            feeder = threading.Thread(target=produce_updates)
            feeder.start()
            reindexed = assembly.open_reindexer(s, repo).run(trained.model_version)
            feeder.join()
            time.sleep(2 * s.serving_refresh_s)  # searches also after the switch
        updated = select(func.count()).select_from(products).where(products.c.version == 2)
        wait_or_fail(lambda: _count(repo, updated) >= len(updates), 300, "updates indexed", procs)
        serving = registry.collections(("serving",))[0]
        index = assembly.open_collection(s, serving.collection, serving.dim)
        rows = index.get([e.product_id for e in updates])
        index.close()
        report["reindex"] = {
            **{k: v for k, v in reindexed.as_dict().items() if k != "missing_base_embedding"},
            "missing_base_embedding": len(reindexed.missing_base_embedding),
            "searches_during": load.sent,
            "failed_queries_during": load.failed,
            "model_versions_served_during": sorted(load.versions),
            "updates_during": len(updates),
            "updates_in_new_collection": sum(
                1
                for e in updates
                if (row := rows.get(e.product_id)) is not None
                and row.version == 2
                and row.model_version == trained.model_version
            ),
        }
        say("[8/8] the same held-out sessions on the trained model")
        report["trained"] = evaluate()
        http.close()
    finally:
        for p in procs:
            p.stop()
        repo.close()
        if not keep:
            try:
                _cleanup(settings, s)
            except Exception as exc:  # the figures stand; leftovers are named for the user
                say(f"cleanup of run {run} incomplete ({exc}): drop eval_clicks_{run}* by hand")
    report["seconds"] = round(time.monotonic() - started, 1)
    return report


def _cleanup(settings: Settings, s: Settings) -> None:
    """Drop the run's database, collections and topics (the dev stack keeps running)."""
    PostgresService(settings).drop_database(s.pg_database)
    client = connect(s.milvus_uri, s.milvus_token.get_secret_value())
    drop_prefixed(client, s.milvus_collection)
    client.close()
    admin = kafka_admin(s)
    admin.delete_topics(list(topic_specs(s)))
    admin.close()
