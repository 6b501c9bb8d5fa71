"""`stylestream eval text`: text retrieval learned from SIMULATED clicks, judged on held-out
sessions in held-out wording (offline: the catalogue goes through the served image path in this
process, the stores are the in-memory twins, the lexical ranker is the twin's).

1. A SYNTHETIC-garment + Fashion-MNIST catalogue (bench/text_shopper.py) is processed by the
   served image path (box, embedding, colours, attributes, words).
2. SIMULATED shoppers type training intents in training wording; lexical search answers; their
   clicks (position bias, noise) become (words, clicked, skipped above) pairs.
3. A GRU-over-GloVe and a MiniLM query tower are trained on those pairs with one product tower.
4. Held-out intents typed in held-out wording (synonyms and sentence shapes never trained on)
   are ranked over the whole catalogue by lexical only, GRU, MiniLM and hybrid (MiniLM fused
   with lexical by reciprocal rank); MRR, MAP, NDCG@10, P@50, R@50 against hidden relevance.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench.ranking_metrics import NAMES, mean_metrics
from bench.simulator import ShopperModel, clicks_by
from bench.text_shopper import Intent, intents, text_catalogue, text_relevance
from bench.wording import Split, express
from processors.products import ProductProcessor, RawEvent
from processors.text import TextQueryError, parse_terms
from schemas.events import encode_event
from search.text import rrf
from stores.memory import MemoryRepository
from stores.rows import postgres_row
from training.text_model import Kind, ProductTable, TextPairs, TextTrainConfig, train_text_model

# Myntra's relative gains of RoBERTa over the GRU (the figures), per metric.
MYNTRA_GAINS = {"MRR": 7.8, "MAP": 15.8, "NDCG@10": 8.8, "P@50": 164.7, "R@50": 145.3}


@dataclass(frozen=True)
class TextEvalSizes:
    garments: int = 2000
    photos: int = 1000
    train_intents: int = 4000
    test_intents: int = 600
    epochs: int = 4
    seed: int = 0

    @classmethod
    def small(cls) -> TextEvalSizes:
        return cls(garments=120, photos=40, train_intents=300, test_intents=60, epochs=1)


def processed_rows(processor: ProductProcessor, events: Sequence[Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for i in range(0, len(events), 64):
        done = processor.process([RawEvent(encode_event(e)) for e in events[i : i + 64]])
        rows += [postgres_row(p, datetime.now(UTC)) for p in done.upserts]
    return rows


def lexical(repo: MemoryRepository, text: str, limit: int) -> list[str]:
    try:
        return [m.product_id for m in repo.text_search(parse_terms(text), limit)]
    except TextQueryError:
        return []


def mine_clicks(
    repo: MemoryRepository,
    wanted: Sequence[Intent],
    truth: dict[str, frozenset[str]],
    seed: int,
    model: ShopperModel,
) -> list[tuple[str, str, list[str]]]:
    """SIMULATED shoppers on the lexical ranker: (words, clicked id, skipped ids above it)."""
    rng = np.random.default_rng([seed, 23])
    mined = []
    for intent in wanted:
        text = express(intent.keys, "train", rng)
        results = [{"product_id": p} for p in lexical(repo, text, model.k)]

        def judge(result: dict[str, Any], intent: Intent = intent) -> float:
            return text_relevance(intent, truth[result["product_id"]])

        clicks = clicks_by(results, judge, rng, model)
        clicked = {r["product_id"] for _, r, _ in clicks}
        for position, result, _ in clicks:
            above = [r["product_id"] for r in results[: position - 1]]
            mined.append((text, result["product_id"], [p for p in above if p not in clicked]))
    return mined


def gains(better: dict[str, float], base: dict[str, float]) -> dict[str, float | None]:
    return {n: round(100 * (better[n] / base[n] - 1), 1) if base[n] > 0 else None for n in NAMES}


def _judge(
    split: Split,
    held_out: Sequence[Intent],
    truth: dict[str, frozenset[str]],
    table: ProductTable,
    repo: MemoryRepository,
    models: dict[str, Any],
    seed: int,
) -> dict[str, dict[str, float]]:
    rng = np.random.default_rng([seed, 29, 0 if split == "train" else 1])
    texts = [express(i.keys, split, rng) for i in held_out]
    relevance = np.array([[text_relevance(i, truth[p]) for p in table.ids] for i in held_out])
    rows = table.row_of()
    depth = min(1000, len(table.ids))
    lexical_ids = [lexical(repo, t, depth) for t in texts]
    ranked: dict[str, list[list[str]]] = {"lexical": lexical_ids}
    for name, (model, products) in models.items():
        scores = model.encode_queries(texts) @ products.T
        order = np.argsort(-scores, axis=1)[:, :depth]
        ranked[name] = [[table.ids[j] for j in row] for row in order]
    pairs = zip(ranked["minilm"], lexical_ids, strict=True)
    ranked["hybrid"] = [list(rrf([dense, words])) for dense, words in pairs]
    return {
        name: mean_metrics([[rows[p] for p in r] for r in lists], relevance)
        for name, lists in ranked.items()
    }


def run_text_eval(processor: ProductProcessor, sizes: TextEvalSizes) -> dict[str, Any]:
    started = time.perf_counter()
    catalogue = text_catalogue(sizes.garments, sizes.photos, sizes.seed)
    rows = processed_rows(processor, catalogue.events)
    repo = MemoryRepository()
    repo.apply(rows, [])
    truth = catalogue.truth
    shopper = ShopperModel(k=10, noise=0.05)
    mined = mine_clicks(
        repo, intents(truth, sizes.train_intents, sizes.seed + 1), truth, sizes.seed, shopper
    )
    table = ProductTable.from_rows(rows)
    pairs = TextPairs.from_mined(mined, table)
    models: dict[str, Any] = {}
    trained: dict[str, Any] = {}
    kinds: tuple[Kind, ...] = ("gru", "minilm")
    for kind in kinds:
        config = TextTrainConfig(kind=kind, epochs=sizes.epochs, seed=sizes.seed)
        t0 = time.perf_counter()
        model = train_text_model(pairs, table, config)
        models[kind] = (model, model.encode_products(table))
        trained[kind] = {
            "config": asdict(config),
            "train_s": round(time.perf_counter() - t0, 1),
            "loss_by_epoch": [round(x, 4) for x in model.history],
        }
    held_out = intents(truth, sizes.test_intents, sizes.seed + 2)
    results = {
        split: _judge(split, held_out, truth, table, repo, models, sizes.seed)
        for split in ("test", "train")
    }
    test = results["test"]
    return {
        "sizes": asdict(sizes),
        "data": "SIMULATED shoppers over SYNTHETIC garments and Fashion-MNIST photos",
        "catalogue": {"products": len(rows), "garments": sizes.garments, "photos": sizes.photos},
        "training": {"pairs": len(pairs), "intents": sizes.train_intents, "models": trained},
        "held_out_wording": test,
        "seen_wording_held_out_sessions": results["train"],
        "gains_pct": {
            "minilm_over_gru": gains(test["minilm"], test["gru"]),
            "myntra_roberta_over_gru": MYNTRA_GAINS,
            "hybrid_over_lexical": gains(test["hybrid"], test["lexical"]),
        },
        "wall_s": round(time.perf_counter() - started, 1),
    }


def run_text_seeds(processor: ProductProcessor, sizes: TextEvalSizes, seeds: int) -> dict[str, Any]:
    """The eval at ``seeds`` seeds (catalogue, shoppers, wording and training all drawn
    again): the first seed's report, each seed's held-out figures, and their mean and spread,
    with the gains on the means and how many seeds each gain held on."""
    runs = [run_text_eval(processor, replace(sizes, seed=sizes.seed + n)) for n in range(seeds)]
    report = runs[0]
    if seeds < 2:
        return report
    tests = [r["held_out_wording"] for r in runs]
    mean = {
        m: {n: round(float(np.mean([t[m][n] for t in tests])), 4) for n in NAMES} for m in tests[0]
    }
    spread = {
        m: {n: round(float(np.std([t[m][n] for t in tests])), 4) for n in NAMES} for m in mean
    }
    held = {n: sum(t["minilm"][n] > t["gru"][n] for t in tests) for n in NAMES}
    report["over_seeds"] = {
        "seeds": [r["sizes"]["seed"] for r in runs],
        "held_out_wording": {"mean": mean, "std": spread},
        "by_seed": tests,
        "gains_pct_on_means": {
            "minilm_over_gru": gains(mean["minilm"], mean["gru"]),
            "myntra_roberta_over_gru": MYNTRA_GAINS,
            "hybrid_over_lexical": gains(mean["hybrid"], mean["lexical"]),
        },
        "minilm_beats_gru_seeds": held,
        "wall_s": round(sum(r["wall_s"] for r in runs), 1),
    }
    return report


def write_text_report(report: dict[str, Any], out: Path) -> None:
    """JSON beside a PNG: the five metrics per method, held-out wording."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    seeds = report.get("over_seeds")
    test = seeds["held_out_wording"]["mean"] if seeds else report["held_out_wording"]
    spread = seeds["held_out_wording"]["std"] if seeds else None
    methods = list(test)
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(methods)
    for n, method in enumerate(methods):
        xs = np.arange(len(NAMES)) + n * width
        errors = [spread[method][m] for m in NAMES] if spread else None
        ax.bar(xs, [test[method][m] for m in NAMES], width, yerr=errors, label=method)
    ax.set_xticks(np.arange(len(NAMES)) + width * (len(methods) - 1) / 2, NAMES)
    where = f"mean and spread of {len(seeds['seeds'])} seeds" if seeds else "one seed"
    ax.set_title(f"Text search on held-out wording (SIMULATED shoppers, {where})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=110)
    plt.close(fig)
