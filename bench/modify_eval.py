"""``stylestream eval modify``: image + text modifier search ("this one, but in red") on
SIMULATED modifier triplets over SYNTHETIC garments (bench/modify_data.py), in one process:
the served image path embeds and tags every garment, the joint model (training/modify_model.py)
learns from the training references' triplets in training wording, and the test references'
queries are ranked over the whole catalogue by

- image only: the reference's nearest neighbours;
- text only: the products whose predicted attributes have the value the words name;
- late fusion: the image neighbours filtered by the attributes parsed from the words (a
  change to a plain pattern also drops what has the old one); words it cannot parse leave the
  image neighbours as they are;
- joint: the joint model's query vector's nearest neighbours.

Recall@10 and NDCG@10, overall, per kind of change, and for (category, value) combinations
never seen in training; in held-out wording (the goal) and in training wording.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.modify_data import (
    CHANGES,
    REFUSED,
    ModifyCatalogue,
    ModifyQuery,
    modify_catalogue,
    words,
)
from bench.text_eval import processed_rows
from bench.text_shopper import garment_event
from bench.wording import MODIFIERS, Split
from processors.modify import joined_batch
from processors.products import ProductProcessor
from processors.text import words as folded
from stores.rows import decode_base
from training.modify_model import (
    ModifyTrainConfig,
    SentenceEncoder,
    TrainedModifier,
    train_modifier,
)

# "_features": neighbours by the served features (embedding, attribute confidences, colour
# shares: what the joint model reads and answers in) instead of the embedding alone
BASELINES = ("image", "image_features", "text", "late_fusion", "late_fusion_features")
METHODS = (*BASELINES, "joint")
GOAL_RATIO = 1.18  # DeepStyle's lower bound over its best baseline
K = 10


@dataclass(frozen=True)
class ModifyEvalSizes:
    references: int = 1000
    distractors: int = 1000
    epochs: int = 60
    seed: int = 0

    @classmethod
    def small(cls) -> ModifyEvalSizes:
        return cls(references=30, distractors=20, epochs=2)


def _vocabulary() -> list[tuple[tuple[str, ...], str]]:
    """The words the system knows for each value (taxonomy names and training wording),
    longest phrases first."""
    out = [
        (tuple(folded(phrase)), key)
        for key, w in MODIFIERS.items()
        for phrase in (w.canonical, *w.train)
    ]
    out += [(tuple(folded(train)), f"pattern.{p}") for p, (train, _) in REFUSED.items()]
    return sorted((p for p in out if p[0]), key=lambda p: -len(p[0]))


VOCABULARY = _vocabulary()


def parse(text: str) -> tuple[str | None, str | None]:
    """(the value asked for, the value refused) as taxonomy keys, from known words only."""
    tokens = folded(text)
    wanted = refused = None
    i = 0
    while i < len(tokens):
        for phrase, key in VOCABULARY:
            if tuple(tokens[i : i + len(phrase)]) == phrase:
                if i > 0 and tokens[i - 1] in ("without", "no"):
                    refused = key
                    wanted = wanted or (key.split(".")[0] + ".solid")
                else:
                    wanted = key
                i += len(phrase) - 1
                break
        i += 1
    return wanted, refused


def _rankings(
    method: str,
    queries: Sequence[ModifyQuery],
    texts: Sequence[str],
    joint: np.ndarray,
    data: dict[str, Any],
) -> np.ndarray:
    """(queries, K) product rows, best first; the reference itself never counts."""
    keys, row = data["keys"], data["row"]
    gallery = data["joined"] if method.endswith("_features") else data["gallery"]
    refs = np.array([row[q.reference] for q in queries])
    image = gallery[refs] @ gallery.T
    if method.startswith("image"):
        scores = image
    elif method == "joint":
        scores = joint @ data["joined"].T
    else:
        scores = np.zeros_like(image) if method == "text" else image.copy()
        for i, text in enumerate(texts):
            wanted, refused = parse(text)
            has = np.array([wanted in k for k in keys]) if wanted else np.ones(len(keys), bool)
            if refused:
                has &= np.array([refused not in k for k in keys])
            scores[i] += np.where(has, 1.0 if method == "text" else 0.0, -10.0)
    scores[np.arange(len(refs)), refs] = -np.inf
    return np.argsort(-scores, axis=1, kind="stable")[:, :K]


def _metrics(ranked: np.ndarray, relevance: np.ndarray) -> dict[str, float]:
    hits = np.take_along_axis(relevance, ranked, axis=1)
    total = relevance.sum(axis=1)
    recall = hits.sum(axis=1) / np.maximum(total, 1)
    discount = 1 / np.log2(np.arange(2, K + 2))
    ideal = np.array([discount[: int(min(n, K))].sum() for n in total])
    ndcg = (hits * discount).sum(axis=1) / np.maximum(ideal, 1e-9)
    return {"R@10": round(float(recall.mean()), 4), "NDCG@10": round(float(ndcg.mean()), 4)}


def _judge(
    catalogue: ModifyCatalogue,
    data: dict[str, Any],
    model: Any,
    encoder: SentenceEncoder,
    wording: Split,
    seed: int,
) -> dict[str, Any]:
    queries = [q for q in catalogue.queries if q.split == "test" and q.reference in data["row"]]
    rng = np.random.default_rng([seed, 47, 0 if wording == "train" else 1])
    designs = {pid: d for pid, d in zip(catalogue.ids, catalogue.designs, strict=True)}
    texts = [words(designs[q.reference], q.change, q.value, wording, rng) for q in queries]
    refs = data["joined"][[data["row"][q.reference] for q in queries]]
    joint = model.queries(refs, encoder.encode(texts))
    relevance = catalogue.relevance(queries)[:, data["kept"]]
    ranked = {m: _rankings(m, queries, texts, joint, data) for m in METHODS}
    groups: dict[str, list[int]] = {"overall": list(range(len(queries)))}
    for change in CHANGES:
        groups[change] = [i for i, q in enumerate(queries) if q.change == change]
    groups["unseen_combinations"] = [i for i, q in enumerate(queries) if q.unseen]
    out: dict[str, Any] = {"queries": {g: len(ix) for g, ix in groups.items()}}
    for m in METHODS:
        out[m] = {g: _metrics(ranked[m][ix], relevance[ix]) for g, ix in groups.items() if ix}
    out["examples"] = [
        {"reference": q.reference, "words": t, "change": f"{q.change}.{q.value}"}
        for q, t in list(zip(queries, texts, strict=True))[:5]
    ]
    return out


def _ratios(result: dict[str, Any]) -> dict[str, Any]:
    """Joint over the best baseline, Recall@10, per group."""
    out = {}
    for group in result["joint"]:
        best = max(result[m][group]["R@10"] for m in BASELINES)
        joint = result["joint"][group]["R@10"]
        out[group] = round(joint / best, 3) if best > 0 else None
    return out


def _embedded(catalogue: ModifyCatalogue, processor: ProductProcessor) -> dict[str, Any]:
    rng = np.random.default_rng(5)
    events = [
        garment_event(pid, image, d.category().split(".", 1)[1], "Synthetic garment", rng)
        for pid, image, d in zip(catalogue.ids, catalogue.images, catalogue.designs, strict=True)
    ]
    rows = {r["product_id"]: r for r in processed_rows(processor, events)}
    kept = [i for i, pid in enumerate(catalogue.ids) if pid in rows]
    chosen = [rows[catalogue.ids[i]] for i in kept]
    gallery = np.stack([decode_base(r["base_embedding"]) for r in chosen])
    gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
    joined = joined_batch(
        [
            (
                {a["attribute_key"]: float(a["confidence"]) for a in r["attributes"]},
                r["colour_fractions"],
                decode_base(r["base_embedding"]),
            )
            for r in chosen
        ]
    )
    keys = [
        frozenset(a["attribute_key"] for a in rows[catalogue.ids[i]]["attributes"]) for i in kept
    ]
    row = {catalogue.ids[i]: n for n, i in enumerate(kept)}
    return {
        "gallery": gallery.astype(np.float32),
        "joined": joined.astype(np.float32),
        "keys": keys,
        "row": row,
        "kept": kept,
    }


@dataclass
class ModifyRun:
    """A trained joint model, its report, and a few held-out queries to check its export."""

    report: dict[str, Any]
    model: TrainedModifier
    encoder: SentenceEncoder
    probe_texts: list[str]
    probe_references: np.ndarray


def run_modify_eval(processor: ProductProcessor, sizes: ModifyEvalSizes) -> dict[str, Any]:
    return train_modify(processor, sizes).report


def train_modify(processor: ProductProcessor, sizes: ModifyEvalSizes) -> ModifyRun:
    """The eval's training and judgement (``stylestream train modify`` exports its model)."""
    started = time.perf_counter()
    catalogue = modify_catalogue(sizes.references, sizes.distractors, sizes.seed)
    data = _embedded(catalogue, processor)
    encoder = SentenceEncoder()
    rng = np.random.default_rng([sizes.seed, 53])
    designs = {pid: d for pid, d in zip(catalogue.ids, catalogue.designs, strict=True)}
    train = [
        q
        for q in catalogue.queries
        if q.split == "train" and not q.unseen and q.reference in data["row"]
    ]
    texts = [words(designs[q.reference], q.change, q.value, "train", rng) for q in train]
    test_refs = {q.reference.rsplit("-", 1)[1] for q in catalogue.queries if q.split == "test"}
    in_train = np.array(
        [not any(pid.startswith(f"synthetic-{kind}-{r}") for kind in ("reference", "target")
                 for r in test_refs) for pid in (catalogue.ids[i] for i in data["kept"])]
    )  # fmt: skip
    positives = catalogue.relevance(train)[:, data["kept"]][:, in_train] > 0
    config = ModifyTrainConfig(epochs=sizes.epochs, seed=sizes.seed)
    t0 = time.perf_counter()
    model = train_modifier(
        data["joined"][[data["row"][q.reference] for q in train]],
        encoder.encode(texts),
        positives,
        data["joined"][in_train],
        config,
    )
    train_s = time.perf_counter() - t0
    results = {w: _judge(catalogue, data, model, encoder, w, sizes.seed) for w in ("test", "train")}
    ratios = _ratios(results["test"])
    report = {
        "sizes": asdict(sizes),
        "data": "SIMULATED modifier triplets over SYNTHETIC garments",
        "catalogue": {"products": len(data["kept"]), "queries": len(catalogue.queries)},
        "training": {
            "triplets": len(train),
            "config": asdict(config),
            "train_s": round(train_s, 1),
            "loss_by_epoch": [round(x, 4) for x in model.history],
        },
        "held_out_wording": results["test"],
        "training_wording": results["train"],
        "joint_over_best_baseline_recall": ratios,
        "done_when": {
            "goal_ratio": GOAL_RATIO,
            "overall": ratios.get("overall"),
            "colour": ratios.get("colour"),
            "met": all((ratios.get(g) or 0) >= GOAL_RATIO for g in ("overall", "colour")),
        },
        "wall_s": round(time.perf_counter() - started, 1),
    }
    probe = train[:4]
    return ModifyRun(
        report,
        model,
        encoder,
        texts[:4],
        data["joined"][[data["row"][q.reference] for q in probe]],
    )


def write_modify_report(report: dict[str, Any], out: Path) -> None:
    """JSON beside a PNG: Recall@10 per method and group, held-out wording."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    test = report["held_out_wording"]
    groups = [g for g in test["joint"]]
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / len(METHODS)
    for n, method in enumerate(METHODS):
        xs = np.arange(len(groups)) + n * width
        ax.bar(xs, [test[method][g]["R@10"] for g in groups], width, label=method)
    ax.set_xticks(np.arange(len(groups)) + width * (len(METHODS) - 1) / 2, groups, fontsize=8)
    ax.set_ylabel("Recall@10")
    ax.set_title("Image + text modifier search, held-out wording (SIMULATED, SYNTHETIC)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=110)
    plt.close(fig)
