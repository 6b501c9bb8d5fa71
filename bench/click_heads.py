"""`stylestream bench heads`: how to train the click head, compared on the same SIMULATED clicks
in one run, without services (the full loop on real services is `stylestream eval clicks`).

The served ranking is replayed in process: the served image path (box, embedding, colour,
attributes) for the catalogue and every query photo, brute-force top-N, then the served rerank.
SIMULATED shoppers click with the simulator's own rule (`shopper_clicks`), clicks become pairs
through the miner's own logic (`ClickMiner`), heads are trained by `training/embedding_head`,
and every variant is judged on the same held-out query photos as the base model: Recall@10,
NDCG@10, MRR of the served ranking and recall@10 of the visual stage alone. (Products'
attributes here come from the tagger alone; the worker also fuses the catalogue's kNN vote.)
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from bench.catalog import fashion_mnist_catalogue
from bench.click_loop import LoopSizes, query_pool
from bench.judging import judge
from bench.simulator import SimulatedQuery, plan_session, relevance, shopper_clicks
from config import assembly
from config.settings import Settings
from processors.clicks import ClickMiner, ListSampler
from processors.products import ProductProcessor
from processors.ranking import VISUAL_ONLY, Weights, rerank
from schemas.interactions import Interaction, Query, SearchImpression, Shown
from stores.base import Hit, IndexRow
from stores.rows import encode_base64
from training.click_head import build_pairs
from training.datasets import to_rgb
from training.embedding_head import (
    HeadConfig,
    fit_calibration,
    fit_head,
    pair_metrics,
    project,
)

Score = Callable[[np.ndarray], np.ndarray]
SERVED = Weights()  # the served rank weights (settings' defaults)


@dataclasses.dataclass
class Side:
    """Featurised images: base embeddings, colour shares, predicted attributes."""

    vectors: np.ndarray
    colours: list[dict[str, float]]
    attributes: list[dict[str, float]]


def featurise(processor: ProductProcessor, images: Sequence[np.ndarray]) -> Side:
    vectors, colours, attributes = [], [], []
    for start in range(0, len(images), 250):
        rgb = [to_rgb(x) for x in images[start : start + 250]]
        v, c, a = processor.describe_queries(rgb)
        vectors.append(v)
        colours += c
        attributes += a
    return Side(np.concatenate(vectors), colours, attributes)


def calibrated(calibration: dict[str, float]) -> Score:
    return lambda cosines: calibration["shift"] + calibration["scale"] * cosines


class Replay:
    """The served two-stage ranking over an in-memory catalogue."""

    def __init__(self, ids: list[str], categories: list[str], catalogue: Side, pool: int) -> None:
        self.ids, self.categories, self.catalogue, self.pool = ids, categories, catalogue, pool

    def rank(
        self,
        queries: Side,
        weight: np.ndarray | None,
        score: Score = lambda s: s,
        weights: Weights = SERVED,
        k: int = 10,
    ) -> list[list[dict[str, Any]]]:
        sims = score(project(weight, queries.vectors) @ project(weight, self.catalogue.vectors).T)
        out = []
        for row, colours, attributes in zip(sims, queries.colours, queries.attributes, strict=True):
            top = np.argsort(-row, kind="stable")[: self.pool]
            candidates = [
                Hit(
                    IndexRow(
                        str(j),
                        colour_fractions=self.catalogue.colours[j],
                        attribute_scores=self.catalogue.attributes[j],
                    ),
                    float(row[j]),
                )
                for j in top
            ]
            ranked = rerank(candidates, colours, weights, attributes)[:k]
            out.append(
                [
                    {
                        "product_id": self.ids[int(r.product_id)],
                        "category": self.categories[int(r.product_id)],
                    }
                    for r in ranked
                ]
            )
        return out


def mine(
    replay: Replay, pool: list[SimulatedQuery], side: Side, sizes: LoopSizes
) -> list[dict[str, Any]]:
    """SIMULATED sessions on the base ranking -> impressions and clicks -> the miner's pairs."""
    miner = ClickMiner(ListSampler(replay.ids))
    pairs: list[dict[str, Any]] = []
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    for s in range(sizes.train_sessions):
        session, rng, picked = plan_session(sizes.seed, s, len(pool), sizes.queries_per_session)
        shown = Side(
            side.vectors[picked],
            [side.colours[i] for i in picked],
            [side.attributes[i] for i in picked],
        )
        for n, (i, results) in enumerate(zip(picked, replay.rank(shown, None), strict=True)):
            embedding = encode_base64(side.vectors[i])
            impression = SearchImpression(
                impression_id=f"{session}-{n}",
                session_id=session,
                event_time=t0,
                query=Query(kind="image", image_sha256="0" * 64, embedding_f16=embedding),
                results=[
                    Shown(product_id=r["product_id"], position=p) for p, r in enumerate(results, 1)
                ],
                model_version="base",
            )
            state = miner.on_impression(None, impression).state
            for position, result, _ in shopper_clicks(pool[i], results, rng):
                click = Interaction(
                    impression_id=impression.impression_id,
                    session_id=session,
                    event_time=t0 + timedelta(seconds=position),
                    type="interaction.click",
                    product_id=result["product_id"],
                    position=position,
                )
                step = miner.on_click(state, click)
                state = step.state
                pairs += [p.model_dump(mode="json") for p in step.pairs]
    return pairs


VARIANTS: dict[str, tuple[HeadConfig, bool]] = {
    "triplet (before)": (HeadConfig(loss="triplet", max_epochs=10, batch_size=128), False),
    "infonce": (HeadConfig(), False),
    "infonce + co-clicks (default)": (HeadConfig(), True),
}


RANK_WEIGHTS = (VISUAL_ONLY, SERVED, Weights(0.6, 0.1, 0.3))


def run_heads_bench(
    settings: Settings, sizes: LoopSizes, eval_queries: int, log: Callable[[str], None]
) -> dict[str, Any]:
    started = time.monotonic()
    cat = fashion_mnist_catalogue(settings.data_dir / "demo", sizes.products)
    teach, held = query_pool("train"), query_pool("eval")
    held = held[:: max(1, len(held) // eval_queries)][:eval_queries]
    log(f"featurising {sizes.products} products and {len(teach) + len(held)} query photos")
    processor = assembly.image_path(settings)
    catalogue = featurise(processor, list(cat.images))
    replay = Replay(
        [e.product_id for e in cat.events],
        [e.category for e in cat.events],
        catalogue,
        settings.rerank_candidates,
    )
    teach_side = featurise(processor, [q.image for q in teach])
    held_side = featurise(processor, [q.image for q in held])
    log(
        f"{sizes.train_sessions} SIMULATED sessions x {sizes.queries_per_session} queries, "
        "base ranking"
    )
    pairs = mine(replay, teach, teach_side, sizes)
    data = build_pairs(pairs, replay.ids, catalogue.vectors)
    counts: dict[str, int] = {}
    for c in replay.categories:
        counts[c] = counts.get(c, 0) + 1

    def judged(
        weight: np.ndarray | None, score: Score = lambda s: s, weights: Weights = SERVED
    ) -> dict[str, float]:
        ranked = replay.rank(held_side, weight, score, weights)
        scores = judge(list(zip(held, ranked, strict=True)), counts, relevance)
        visual = list(zip(held, replay.rank(held_side, weight, weights=VISUAL_ONLY), strict=True))
        scores["visual_only_recall_at_10"] = judge(visual, counts, relevance)["recall_at_10"]
        return scores

    report: dict[str, Any] = {
        "what": "click-head variants on the same SIMULATED clicks, the served ranking replayed",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "sizes": {**sizes.__dict__, "eval_queries": len(held)},
        "pairs": len(pairs),
        "train_pairs": len(data.train),
        "held_out_pairs": len(data.held_out),
        "train_coclicks": len(data.train.coclicks),
        "base": {**judged(None), "held_out_pairs": pair_metrics(None, data.held_out)},
        "variants": {},
    }
    log(f"{len(pairs)} pairs; base {report['base']}")
    for name, (config, coclicks) in VARIANTS.items():
        train = (
            data.train
            if coclicks
            else dataclasses.replace(data.train, coclicks=np.zeros((0, 2), np.int64))
        )
        t0 = time.monotonic()
        fit = fit_head(train, data.held_out, config)
        cal = fit_calibration(
            fit.weight, train.anchors, catalogue.vectors, settings.rerank_candidates
        )
        report["variants"][name] = {
            "config": config.as_dict(),
            "best_epoch": fit.best_epoch,
            "train_seconds": round(time.monotonic() - t0, 1),
            "held_out_pairs": pair_metrics(fit.weight, data.held_out),
            "calibration": cal,
            "raw_cosines": judged(fit.weight),
            "calibrated": judged(fit.weight, calibrated(cal)),
        }
        log(f"{name}: {report['variants'][name]['calibrated']}")
    # The metric only sees categories, so a larger attribute weight helps any model: the base
    # model and the default head (the last variant) side by side at other rank weights.
    report["by_rank_weights"] = [
        {
            "weights": dataclasses.asdict(w),
            "base": judged(None, weights=w),
            "default head, calibrated": judged(fit.weight, calibrated(cal), w),
        }
        for w in RANK_WEIGHTS
    ]
    report["seconds"] = round(time.monotonic() - started, 1)
    return report


def write_report(report: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
