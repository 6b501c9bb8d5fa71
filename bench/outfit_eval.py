"""``stylestream eval outfits``: outfit compatibility on SIMULATED outfits (bench/stylist.py)
over SYNTHETIC garments and Fashion-MNIST photos, in one process. Not real outfits: every
figure is measured on the simulated stylist's labels.

Every item goes through the served image path (embedding, attributes, colour: its joined
features), and so do two augmented views of it (a garment drawn in another scene, a photo
flipped and cropped). Per seed: a split (a fifth of the items held out; test outfits only of
them), then the training outfits' labels at 5, 10, 25 and 100 % (nested), a supervised-only
and a semi-supervised model at each (training/outfit_model.py: the semi-supervised one also
labels the training outfits left unlabelled at that fraction, reading none of their labels),
and baselines: random scores and visual similarity (the mean cosine of the outfit's items'
features). Judged on the disjoint test set: fill-in-the-blank accuracy (4 candidates of the
blank's role and look) and compatibility AUC (the hidden rules' verdict, no noise).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from bench.stylist import (
    Blank,
    SimulatedOutfit,
    StylistCatalogue,
    fitb_questions,
    split_outfits,
    stylist_catalogue,
)
from bench.text_eval import processed_rows
from bench.text_shopper import garment_event
from processors.modify import joined_batch
from processors.outfit_compat import ROLE_INDEX
from processors.products import ProductProcessor
from stores.rows import decode_base
from training.datasets import CLASSES, load_split
from training.outfit_model import CompatConfig, Outfits, TrainedCompat, train_compat

FRACTIONS = (0.05, 0.10, 0.25, 1.0)
METHODS = ("supervised", "semi_supervised")
BASELINES = ("random", "visual_similarity")
GOAL_FRACTION = 0.10
GOAL_SHARE_OF_FULL = 0.95
DATA = (
    "SIMULATED outfits (hidden visual rules, 10% label noise) over SYNTHETIC garments and "
    "Fashion-MNIST photos"
)


@dataclass(frozen=True)
class OutfitEvalSizes:
    garments: int = 1400
    photos: int = 600
    train_outfits: int = 4000
    test_outfits: int = 2000
    views: int = 2
    image_only: float = 0.0  # of the training items: in no outfit, unlabelled images alone
    steps: int = 800
    seeds: int = 3
    seed: int = 0

    @classmethod
    def small(cls) -> OutfitEvalSizes:
        return cls(garments=210, photos=40, train_outfits=200, test_outfits=60, steps=20,
                   seeds=2)  # fmt: skip


@dataclass(frozen=True)
class ItemData:
    """Every item's served features and its views' (rows aligned with ``ids``)."""

    ids: list[str]
    row: dict[str, int]
    features: np.ndarray  # (N, D)
    views: np.ndarray  # (N, V, D)
    roles: np.ndarray  # (N,) role indices


@dataclass(frozen=True)
class Photos:
    """Fashion-MNIST train photos as catalogue items: product id -> category, pixels."""

    categories: dict[str, str]
    images: dict[str, np.ndarray]

    @classmethod
    def load(cls, n: int, seed: int) -> Photos:
        images, labels = load_split("train")
        picked = np.sort(np.random.default_rng([seed, 103]).permutation(len(images))[:n])
        ids = [f"fashion-mnist-{int(i):05d}" for i in picked]
        return cls(
            {pid: CLASSES[int(labels[i])] for pid, i in zip(ids, picked, strict=True)},
            {pid: images[i] for pid, i in zip(ids, picked, strict=True)},
        )


def _photo_view(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A flip and a crop (85-100 %), padded back: the shape moves, colour and texture stay."""
    out = image[:, ::-1] if rng.random() < 0.5 else image
    h, w = out.shape[:2]
    ch, cw = (round(s * rng.uniform(0.85, 1.0)) for s in (h, w))
    y, x = int(rng.integers(h - ch + 1)), int(rng.integers(w - cw + 1))
    crop = out[y : y + ch, x : x + cw]
    canvas = np.zeros_like(image)
    oy, ox = (h - ch) // 2, (w - cw) // 2
    canvas[oy : oy + ch, ox : ox + cw] = crop
    return np.ascontiguousarray(canvas)


def _images(
    cat: StylistCatalogue, photos: dict[str, np.ndarray], view: int, seed: int
) -> list[np.ndarray]:
    """Each item's image: view 0 the catalogue's, later views augmented."""
    rng = np.random.default_rng([seed, 89, view])
    out = []
    for n, piece in enumerate(cat.pieces):
        if piece.design is not None:
            out.append(piece.design.render(seed * 100_000 + n + 7919 * view).image)
        elif view == 0:
            out.append(photos[piece.product_id])
        else:
            out.append(_photo_view(photos[piece.product_id], rng))
    return out


def _features(
    processor: ProductProcessor, cat: StylistCatalogue, images: Sequence[np.ndarray],
    photos: dict[str, str],
) -> np.ndarray:  # fmt: skip
    rng = np.random.default_rng(5)
    events = [
        garment_event(
            p.product_id,
            image,
            p.design.category().split(".", 1)[1] if p.design else photos[p.product_id],
            "SYNTHETIC garment" if p.design else "Fashion-MNIST photo",
            rng,
        )
        for p, image in zip(cat.pieces, images, strict=True)
    ]
    rows = {r["product_id"]: r for r in processed_rows(processor, events)}
    missing = [p.product_id for p in cat.pieces if p.product_id not in rows]
    if missing:
        raise RuntimeError(f"the served path refused {len(missing)} items, e.g. {missing[:3]}")
    return joined_batch(
        [
            (
                {a["attribute_key"]: float(a["confidence"]) for a in r["attributes"]},
                r["colour_fractions"],
                decode_base(r["base_embedding"]),
            )
            for r in (rows[p.product_id] for p in cat.pieces)
        ]
    )


def embed_items(
    processor: ProductProcessor, cat: StylistCatalogue, photos: Photos, views: int, seed: int
) -> ItemData:
    feats = [
        _features(processor, cat, _images(cat, photos.images, v, seed), photos.categories)
        for v in range(views + 1)
    ]
    ids = [p.product_id for p in cat.pieces]
    return ItemData(
        ids,
        {pid: i for i, pid in enumerate(ids)},
        feats[0],
        np.stack(feats[1:], axis=1),
        np.array([ROLE_INDEX[p.role] for p in cat.pieces]),
    )


def auc(scores: np.ndarray, truth: np.ndarray) -> float:
    """The chance a compatible outfit outscores an incompatible one (ties count half)."""
    pos, neg = scores[truth], scores[~truth]
    if not len(pos) or not len(neg):
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


Scorer = Callable[[Sequence[str]], float]


def judge(
    scorer: Scorer, questions: Sequence[Blank], test: Sequence[SimulatedOutfit]
) -> dict[str, float]:
    right = 0
    for q in questions:
        rest = [pid for i, pid in enumerate(q.outfit.product_ids) if i != q.hidden]
        options = [scorer([*rest, c]) for c in q.candidates]
        right += q.candidates[int(np.argmax(options))] == q.answer
    scores = np.array([scorer(o.product_ids) for o in test])
    truth = np.array([o.truth for o in test])
    fitb = right / len(questions) if questions else float("nan")
    return {"fitb": fitb, "auc": auc(scores, truth)}


def model_scorer(trained: TrainedCompat, data: ItemData) -> Scorer:
    e, head = trained.embeddings(data.features), trained.head()

    def score(ids: Sequence[str]) -> float:
        rows = [data.row[p] for p in ids]
        return head.outfit_score(e[rows], [int(data.roles[r]) for r in rows])

    return score


def similarity_scorer(data: ItemData) -> Scorer:
    def score(ids: Sequence[str]) -> float:
        x = data.features[[data.row[p] for p in ids]]
        sims = x @ x.T
        k = len(ids)
        return float((sims.sum() - np.trace(sims)) / max(k * (k - 1), 1))

    return score


def random_scorer(seed: int) -> Scorer:
    rng = np.random.default_rng([seed, 97])
    return lambda ids: float(rng.random())


def item_rows(outfits: Sequence[SimulatedOutfit], data: ItemData) -> list[list[int]]:
    return [[data.row[p] for p in o.product_ids] for o in outfits]


def labelled_outfits(outfits: Sequence[SimulatedOutfit], data: ItemData) -> Outfits:
    return Outfits.of(item_rows(outfits, data), data.roles, [o.compatible for o in outfits])


def _one_seed(
    cat: StylistCatalogue, data: ItemData, sizes: OutfitEvalSizes, config: CompatConfig,
    seed: int,
) -> dict[str, Any]:  # fmt: skip
    splits = split_outfits(cat, sizes.train_outfits, sizes.test_outfits, 1.0, seed,
                           image_only_share=sizes.image_only)  # fmt: skip
    train = splits.labelled
    questions = fitb_questions(cat, splits.test, seed)
    unlabelled = np.array(sorted(data.row[p] for p in splits.train_items | splits.image_only))
    order = np.random.default_rng([seed, 101]).permutation(len(train))
    out: dict[str, Any] = {
        "random": judge(random_scorer(seed), questions, splits.test),
        "visual_similarity": judge(similarity_scorer(data), questions, splits.test),
        "questions": len(questions),
        "test_outfits": len(splits.test),
        "train_outfits": len(train),
    }
    for fraction in FRACTIONS:
        k = max(2, round(fraction * len(train)))
        labelled = [train[i] for i in sorted(order[:k])]
        rest = item_rows([train[i] for i in sorted(order[k:])], data)  # their labels unread
        for method in METHODS:
            c = replace(config, semi=method == "semi_supervised", seed=seed)
            t0 = time.perf_counter()
            given = labelled_outfits(labelled, data)
            trained = train_compat(data.features, data.views, data.roles, given, unlabelled, c,
                                   rest)  # fmt: skip
            result = judge(model_scorer(trained, data), questions, splits.test)
            result["pseudo_labelled"] = trained.pseudo_labelled
            result["train_s"] = round(time.perf_counter() - t0, 1)
            out[f"{method}@{fraction:g}"] = result
    return out


def _summary(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    keys = [*BASELINES, *(f"{m}@{f:g}" for f in FRACTIONS for m in METHODS)]
    out = {}
    for key in keys:
        entry = {}
        for metric in ("fitb", "auc"):
            values = [s[key][metric] for s in per_seed]
            entry[metric] = {"mean": round(float(np.mean(values)), 4),
                             "std": round(float(np.std(values)), 4),
                             "seeds": [round(v, 4) for v in values]}  # fmt: skip
        out[key] = entry
    return out


def _done_when(summary: dict[str, Any]) -> dict[str, Any]:
    sup, semi = (summary[f"{m}@{GOAL_FRACTION:g}"] for m in METHODS)
    full = summary["supervised@1"]["fitb"]["mean"]
    out: dict[str, Any] = {}
    for metric in ("fitb", "auc"):
        margin = semi[metric]["mean"] - sup[metric]["mean"]
        spread = max(semi[metric]["std"], sup[metric]["std"])
        out[metric] = {"margin": round(margin, 4), "seed_spread": spread,
                       "met": margin > spread}  # fmt: skip
    share = semi["fitb"]["mean"] / full if full else 0.0
    out["fitb_share_of_full_supervision"] = {"share": round(share, 4),
                                             "goal": GOAL_SHARE_OF_FULL,
                                             "met": share >= GOAL_SHARE_OF_FULL}  # fmt: skip
    out["met"] = all(v["met"] for v in out.values())
    return out


def run_outfit_eval(
    processor: ProductProcessor, sizes: OutfitEvalSizes, config: CompatConfig | None = None
) -> dict[str, Any]:
    started = time.perf_counter()
    config = config or CompatConfig(steps=sizes.steps)
    photos = Photos.load(sizes.photos, sizes.seed)
    cat = stylist_catalogue(sizes.garments, list(photos.categories.items()), sizes.seed)
    data = embed_items(processor, cat, photos, sizes.views, sizes.seed)
    embed_s = time.perf_counter() - started
    per_seed = [_one_seed(cat, data, sizes, config, sizes.seed + s) for s in range(sizes.seeds)]
    summary = _summary(per_seed)
    return {
        "data": DATA,
        "sizes": asdict(sizes),
        "config": asdict(config),
        "items": {"total": len(data.ids), "features": int(data.features.shape[1])},
        "summary": summary,
        "per_seed": per_seed,
        "done_when": _done_when(summary),
        "embed_s": round(embed_s, 1),
        "wall_s": round(time.perf_counter() - started, 1),
    }


def write_outfit_report(report: dict[str, Any], out: Path) -> None:
    """JSON beside a PNG: FITB and AUC by label fraction (mean, seed spread as bars), the
    baselines as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    summary = report["summary"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    xs = [100 * f for f in FRACTIONS]
    for ax, metric in zip(axes, ("fitb", "auc"), strict=True):
        for method, style in zip(METHODS, ("s--", "o-"), strict=True):
            points = [summary[f"{method}@{f:g}"][metric] for f in FRACTIONS]
            ax.errorbar(xs, [p["mean"] for p in points], yerr=[p["std"] for p in points],
                        fmt=style, capsize=3, label=method)  # fmt: skip
        for baseline, colour in zip(BASELINES, ("grey", "tab:red"), strict=True):
            ax.axhline(summary[baseline][metric]["mean"], color=colour, ls=":", label=baseline)
        ax.set_xscale("log")
        ax.set_xticks(xs, [f"{x:g}%" for x in xs])
        ax.set_xlabel("labelled training outfits")
        ax.set_ylabel("fill-in-the-blank accuracy (4)" if metric == "fitb" else "AUC")
        ax.legend(fontsize=8)
    fig.suptitle(f"Outfit compatibility, {report['sizes']['seeds']} seeds (SIMULATED outfits)")
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=110)
    plt.close(fig)


@dataclass
class CompatRun:
    """A compatibility model trained as the eval trains it, its held-out figures and lineage,
    and a few items' features to check its export."""

    trained: TrainedCompat
    report: dict[str, Any]
    probe: np.ndarray


def train_outfits(
    processor: ProductProcessor, sizes: OutfitEvalSizes, fraction: float, semi: bool
) -> CompatRun:
    """One model at ``fraction`` of the labels (``stylestream train outfits`` registers it)."""
    started = time.perf_counter()
    config = CompatConfig(steps=sizes.steps, semi=semi, seed=sizes.seed)
    photos = Photos.load(sizes.photos, sizes.seed)
    cat = stylist_catalogue(sizes.garments, list(photos.categories.items()), sizes.seed)
    data = embed_items(processor, cat, photos, sizes.views, sizes.seed)
    splits = split_outfits(cat, sizes.train_outfits, sizes.test_outfits, fraction, sizes.seed)
    unlabelled = np.array(sorted(data.row[p] for p in splits.train_items))
    trained = train_compat(data.features, data.views, data.roles,
                           labelled_outfits(splits.labelled, data), unlabelled, config,
                           item_rows(splits.unlabelled, data))  # fmt: skip
    questions = fitb_questions(cat, splits.test, sizes.seed)
    report = {
        "data": DATA,
        "sizes": asdict(sizes),
        "config": asdict(config),
        "label_fraction": fraction,
        "labelled_outfits": len(splits.labelled),
        "unlabelled_items": len(unlabelled) if semi else 0,
        "unlabelled_outfits": len(splits.unlabelled) if semi else 0,
        "pseudo_labelled_outfits": trained.pseudo_labelled,
        "held_out": judge(model_scorer(trained, data), questions, splits.test),
        "visual_similarity": judge(similarity_scorer(data), questions, splits.test),
        "wall_s": round(time.perf_counter() - started, 1),
    }
    return CompatRun(trained, report, data.features[:4])
