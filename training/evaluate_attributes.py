"""`stylestream eval attributes`: the served attribute models on held-out data, in one run.

- Test data: Fashion-MNIST's test split (real photos, categories only) and a SYNTHETIC garment
  set from a seed never used in training.
- Search-alone category: the vote of the nearest products in a labelled gallery (Fashion-MNIST
  train photos + other synthetic garments), the same vote the worker takes over Milvus.
- Per-attribute precision/recall/F1 of the attributes as served (thresholds, one value per
  exclusive group, groups gated by department) on the synthetic test set (category: the fused
  category on both sets), macro-F1
  per group, category accuracy of the model, the search and their fusion, and the mean IoU of
  the learned box against the foreground-box rule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from processors.colour import PALETTE_NAMES
from processors.detector import RegionFinder
from processors.products import Embedder
from processors.roi import Box, foreground_region
from processors.tagger import OnnxTagger, fuse
from schemas.attributes import CATEGORY_KEYS
from training.attributes import (
    SEED_TEST,
    Examples,
    fashion_mnist_examples,
    featurise,
    synthetic_examples,
)
from training.tagger import LabelledSet, knn_votes

SEED_GALLERY = 14


@dataclass(frozen=True)
class EvalSizes:
    fashion_mnist_test: int = 2000
    synthetic_test: int = 1000
    gallery_fashion_mnist: int = 4000
    gallery_synthetic: int = 2000


def _prf(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    tp = float((pred & truth).sum())
    p = tp / pred.sum() if pred.sum() else 0.0
    r = tp / truth.sum() if truth.sum() else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f1, 4),
            "support": int(truth.sum())}  # fmt: skip


def _mean_iou(found: list[Box], truth: list[Box]) -> float:
    return round(float(np.mean([a.iou(b) for a, b in zip(found, truth, strict=True)])), 4)


def evaluate_attributes(
    embedder: Embedder,
    finder: RegionFinder,
    tagger: OnnxTagger,
    sizes: EvalSizes = EvalSizes(),
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    card = tagger.card
    tests: dict[str, Examples] = {
        "fashion_mnist_test": fashion_mnist_examples("t10k", sizes.fashion_mnist_test, 0),
        "synthetic_test": synthetic_examples(sizes.synthetic_test, SEED_TEST),
    }
    gallery_examples = fashion_mnist_examples(
        "train", sizes.gallery_fashion_mnist, 7
    ) + synthetic_examples(sizes.gallery_synthetic, SEED_GALLERY)
    log(f"featurising a gallery of {len(gallery_examples.images)} labelled images")
    gallery, _ = featurise(
        gallery_examples, embedder, finder, ["gallery"] * len(gallery_examples.images)
    )
    gallery_labels = [CATEGORY_KEYS[c] for c in gallery.category]
    report: dict[str, Any] = {
        "data": {
            "note": "synthetic_test and the synthetic part of the gallery are SYNTHETIC "
            "drawn garments (training/synthetic_garments.py), not product photos",
            **{name: len(ex.images) for name, ex in tests.items()},
            "gallery": len(gallery_examples.images),
        },
        "models": {
            "embedding": embedder.model_version,
            "detector": finder.model_version,
            "tagger": card.model_version,
            "fusion": {"alpha": card.fusion_alpha, "k": card.fusion_k},
        },
        "category_accuracy": {},
        "roi_mean_iou": {},
    }
    fused_all, truth_all = [], []
    synthetic_set: LabelledSet | None = None
    synthetic_keys: np.ndarray | None = None
    for name, examples in tests.items():
        log(f"featurising {name} ({len(examples.images)} images)")
        labelled, boxes = featurise(examples, embedder, finder, [name] * len(examples.images))
        predictions = tagger.predict(labelled.vectors, labelled.colours)
        model = np.stack([p.category_probs for p in predictions])
        votes = knn_votes(labelled.vectors, gallery.vectors, gallery_labels, card.fusion_k)
        fused = np.stack([fuse(m, v, card.fusion_alpha) for m, v in zip(model, votes, strict=True)])
        truth = labelled.category
        report["category_accuracy"][name] = {
            "model": round(float((model.argmax(1) == truth).mean()), 4),
            "search": round(float((votes.argmax(1) == truth).mean()), 4),
            "fusion": round(float((fused.argmax(1) == truth).mean()), 4),
        }
        baseline = [foreground_region(img).box for img in examples.images]
        report["roi_mean_iou"][name] = {
            "learned": _mean_iou(boxes, examples.boxes),
            "foreground": _mean_iou(baseline, examples.boxes),
        }
        fused_all.append(fused.argmax(1))
        truth_all.append(truth)
        if name == "synthetic_test":  # what is served: thresholds, gating by department
            synthetic_set = labelled
            shares = [
                dict(zip(PALETTE_NAMES, row[: len(PALETTE_NAMES)].tolist(), strict=True))
                for row in labelled.colours
            ]
            served = [
                {t.key for t in tagger.tags(p, v, (), c)[2]}
                for p, v, c in zip(predictions, votes, shares, strict=True)
            ]
            synthetic_keys = np.array(
                [[key in keys for key in card.attribute_keys] for keys in served], dtype=bool
            )
    assert synthetic_set is not None and synthetic_keys is not None
    per_attribute: dict[str, dict[str, float]] = {}
    pred_c, truth_c = np.concatenate(fused_all), np.concatenate(truth_all)
    for i, key in enumerate(CATEGORY_KEYS):
        per_attribute[key] = _prf(pred_c == i, truth_c == i)
    for j, key in enumerate(card.attribute_keys):
        per_attribute[key] = _prf(synthetic_keys[:, j], synthetic_set.attributes[:, j] > 0)
    groups: dict[str, list[float]] = {}
    for key, m in per_attribute.items():
        if m["support"] > 0:
            groups.setdefault(key.split(".")[0], []).append(m["f1"])
    report["group_macro_f1"] = {g: round(float(np.mean(v)), 4) for g, v in groups.items()}
    report["attributes"] = per_attribute
    report["checks"] = {
        "fusion_at_least_best_single": all(
            a["fusion"] >= max(a["model"], a["search"])
            for a in report["category_accuracy"].values()
        ),
        "learned_box_above_foreground": all(
            r["learned"] > r["foreground"] for r in report["roi_mean_iou"].values()
        ),
    }
    return report


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    groups = report["group_macro_f1"]
    axes[0].bar(list(groups), list(groups.values()), color="#4c72b0")
    axes[0].set_title("Macro-F1 per attribute group")
    axes[0].set_ylim(0, 1)
    axes[0].tick_params(axis="x", rotation=45)
    for ax, key, parts, title in (
        (axes[1], "category_accuracy", ("model", "search", "fusion"), "Category accuracy"),
        (axes[2], "roi_mean_iou", ("foreground", "learned"), "Item box: mean IoU"),
    ):
        sets = list(report[key])
        width = 0.8 / len(parts)
        for i, part in enumerate(parts):
            values = [report[key][s][part] for s in sets]
            xs = np.arange(len(sets)) + i * width
            ax.bar(xs, values, width, label=part)
            for x, v in zip(xs, values, strict=True):
                ax.text(x, v + 0.01, f"{v:.3f}", ha="center", fontsize=8)
        ax.set_xticks(np.arange(len(sets)) + width * (len(parts) - 1) / 2, sets)
        ax.set_ylim(0, 1.05)
        ax.set_title(title)
        ax.legend(loc="lower right")
    fig.suptitle("stylestream eval attributes (synthetic_test is SYNTHETIC data)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
