"""`stylestream eval clicks` (and the demo's last step): the whole click loop on real services.

A catalogue streamed through Kafka and a real worker -> SIMULATED shoppers search the real API
and click through its endpoint -> a real `stylestream mine` process mines pairs -> a head is
trained and registered -> `reindex` switches to it while searches and product updates keep
coming -> the same held-out sessions are judged before and after.

Everything runs in its own database, collections, topics and consumer groups, so the numbers
never depend on what a dev stack already holds.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from stylestream.click_simulator import (
    SimulatedQuery,
    png_bytes,
    relevance,
)
from stylestream.dev.process import free_port, terminate
from stylestream.fashion_mnist import CLASSES, load_split
from stylestream.settings import Settings


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


def judge(
    searches: Sequence[tuple[SimulatedQuery, list[dict[str, Any]]]],
    catalogue_counts: dict[str, int],
    k: int = 10,
) -> dict[str, float]:
    """Recall@k (relevant = the shopper's category; of at most k findable), MRR of the first
    relevant result, and NDCG@k on the simulator's graded relevance."""
    recalls, rrs, ndcgs = [], [], []
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    for query, results in searches:
        top = results[:k]
        grades = np.array([relevance(query, r) for r in top] + [0.0] * (k - len(top)))
        relevant = np.array(
            [r.get("category") == query.category for r in top] + [False] * (k - len(top))
        )
        findable = min(k, catalogue_counts.get(query.category, 0))
        recalls.append(relevant.sum() / findable if findable else 0.0)
        first = np.flatnonzero(relevant)
        rrs.append(1.0 / (first[0] + 1) if len(first) else 0.0)
        ideal = np.sort(np.r_[np.ones(findable), np.zeros(k - findable)])[::-1]
        idcg = float((ideal * discounts).sum())
        ndcgs.append(float((grades * discounts).sum()) / idcg if idcg else 0.0)
    return {
        "queries": len(searches),
        "recall_at_10": round(float(np.mean(recalls)), 4) if recalls else 0.0,
        "mrr": round(float(np.mean(rrs)), 4) if rrs else 0.0,
        "ndcg_at_10": round(float(np.mean(ndcgs)), 4) if ndcgs else 0.0,
    }


class Process:
    """A `stylestream` subcommand as a child process, its output in a log file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        log.parent.mkdir(parents=True, exist_ok=True)
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "stylestream.cli", *args],
                env=env,
                cwd=log.parent,  # Faust keeps its table data in the working directory
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def check(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.proc.args!r} exited {self.proc.returncode}: see {self.log}")

    def stop(self) -> None:
        terminate(self.proc)


def wait_or_fail(
    check: Callable[[], bool], timeout: float, what: str, procs: Sequence[Process] = ()
) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        for p in procs:
            p.check()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not done within {timeout:.0f}s")
        time.sleep(0.5)


class SearchLoad:
    """Searches through the API from a thread, counting every one that fails."""

    def __init__(self, base_url: str, queries: Sequence[SimulatedQuery]) -> None:
        self.base_url = base_url
        self.images = [png_bytes(q.image) for q in queries[:50]]
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
            while not self._stop.is_set():
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
    }


def visual_recall(settings: Settings, queries: Sequence[SimulatedQuery], k: int = 10) -> float:
    """Recall@k of the serving collection's visual stage alone (no colour, no attributes)."""
    from processors.ranking import Weights, rerank
    from stylestream import components
    from stylestream.fashion_mnist import to_rgb

    service = components.open_search(settings)
    try:
        hits = 0
        for start in range(0, len(queries), 100):
            batch = queries[start : start + 100]
            stages = service.stage_one([to_rgb(q.image) for q in batch], service.candidates)
            for q, stage in zip(batch, stages, strict=True):
                ranked = rerank(stage.candidates, stage.colours, Weights(1.0, 0.0, 0.0))[:k]
                hits += sum(r.fields.get("category") == q.category for r in ranked)
        return round(hits / (k * len(queries)), 4) if queries else 0.0
    finally:
        service.targets.close()
