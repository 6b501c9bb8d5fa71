"""`stylestream eval compact`: the gallery model, the homogeneous compact model and the compatible
compact query model, from their ONNX exports, on held-out photos (Fashion-MNIST test split,
never trained on):

- real-shot queries: SYNTHETIC shots (training/real_shots.py) of gallery photos, the shown item
  the one relevant answer (recall@10; mAP@10, which is MRR@10 with one relevant item);
- plain queries: gallery photos as they are, their category the relevance (precision@10,
  mAP@10), the query itself left out.

Pairs, as CMP-NAS reads them: paragon (gallery model on both sides), compatible (compact query
model against the gallery model's gallery), homogeneous (the compact model trained on its own,
both sides) and unadapted (the homogeneous compact query against the gallery model's gallery:
what a mismatched pairing serves). Cost: multiply-accumulates counted from each ONNX graph,
batch-1 latency and batched throughput measured here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

K = 10


@dataclass(frozen=True)
class EvalSizes:
    gallery: int = 10_000
    real_shots: int = 3000
    plain: int = 1000
    seed: int = 7  # of the shots: the same queries for every pair
    speed_seconds: float = 3.0  # of timing per model and batch size


def _top(queries: np.ndarray, gallery: np.ndarray, exclude_self: bool) -> np.ndarray:
    """Each query's top K gallery rows by cosine, in blocks to bound memory."""
    out = np.empty((len(queries), K), np.int64)
    for start in range(0, len(queries), 500):
        scores = queries[start : start + 500] @ gallery.T
        if exclude_self:
            rows = np.arange(start, min(start + 500, len(queries)))
            scores[rows - start, rows] = -np.inf
        top = np.argpartition(-scores, K, axis=1)[:, :K]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
        out[start : start + len(scores)] = np.take_along_axis(top, order, axis=1)
    return out


def instance_metrics(queries: np.ndarray, gallery: np.ndarray) -> dict[str, float]:
    """Query i shows gallery item i: recall@10 and mAP@10 (= MRR@10 with one relevant)."""
    top = _top(queries, gallery, exclude_self=False)
    hits = top == np.arange(len(queries))[:, None]
    found = hits.any(axis=1)
    rank = hits.argmax(axis=1)
    return {
        "recall_at_10": round(float(found.mean()), 4),
        "map_at_10": round(float(np.where(found, 1.0 / (rank + 1), 0.0).mean()), 4),
    }


def category_metrics(
    queries: np.ndarray, gallery: np.ndarray, labels: np.ndarray
) -> dict[str, float]:
    """Query i is gallery photo i (left out); relevant: the same category. AP@10 divides by
    min(10, the relevant photos in the gallery), so a lone hit at rank 1 is not a perfect AP."""
    top = _top(queries, gallery, exclude_self=True)
    own = labels[: len(queries)]
    relevant = labels[top] == own[:, None]
    precision_at = np.cumsum(relevant, axis=1) / np.arange(1, K + 1)
    in_gallery = (labels[None, :] == own[:, None]).sum(axis=1) - 1  # the query left out
    ap = (precision_at * relevant).sum(axis=1) / np.maximum(np.minimum(in_gallery, K), 1)
    return {
        "precision_at_10": round(float(relevant.mean()), 4),
        "map_at_10": round(float(ap.mean()), 4),
    }


@dataclass(frozen=True)
class Embeddings:
    """One model's embeddings of the gallery photos and of the real shots."""

    gallery: np.ndarray
    shots: np.ndarray


def pair_metrics(
    query: Embeddings, gallery: Embeddings, labels: np.ndarray, plain: int
) -> dict[str, dict[str, float]]:
    return {
        "real_shot": instance_metrics(query.shots, gallery.gallery),
        "plain": category_metrics(query.gallery[:plain], gallery.gallery, labels),
    }


def all_pairs(
    models: dict[str, Embeddings], labels: np.ndarray, plain: int
) -> dict[str, dict[str, dict[str, float]]]:
    """``models``: gallery, compatible, homogeneous."""
    g, c, h = models["gallery"], models["compatible"], models["homogeneous"]
    return {
        "paragon": pair_metrics(g, g, labels, plain),
        "compatible": pair_metrics(c, g, labels, plain),
        "homogeneous": pair_metrics(h, h, labels, plain),
        "unadapted": pair_metrics(h, g, labels, plain),
    }


def verdict(pairs: dict[str, Any], costs: dict[str, Any]) -> dict[str, Any]:
    """The issue's done-when, on the real-shot queries, as measured (not asserted)."""
    r = {name: pairs[name]["real_shot"]["recall_at_10"] for name in pairs}
    flops = costs["gallery"]["macs"] / costs["compatible"]["macs"]
    latency = costs["gallery"]["batch1_p50_ms"] / costs["compatible"]["batch1_p50_ms"]
    return {
        "flops_ratio": round(flops, 1),
        "batch1_latency_ratio": round(latency, 1),
        "paragon_minus_compatible_points": round(100 * (r["paragon"] - r["compatible"]), 2),
        "paragon_minus_homogeneous_points": round(100 * (r["paragon"] - r["homogeneous"]), 2),
        "cost_at_least_20x_less": flops >= 20 and latency >= 20,
        "compatible_within_1_point": r["paragon"] - r["compatible"] <= 0.01,
        "paragon_beats_homogeneous_by_2_points": r["paragon"] - r["homogeneous"] >= 0.02,
    }


def plot(report: dict[str, Any], path: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = report["pairs"]
    names = list(pairs)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for ax, (query_set, metric) in zip(
        axes[:2], (("real_shot", "recall_at_10"), ("plain", "precision_at_10")), strict=True
    ):
        values = [pairs[n][query_set][metric] for n in names]
        ax.bar(names, values, color=["grey", "tab:green", "tab:blue", "tab:red"])
        for i, v in enumerate(values):
            ax.text(i, v, f"{v:.3f}", ha="center", va="bottom", fontsize=8)
        title = "SYNTHETIC real shots" if query_set == "real_shot" else "plain held-out photos"
        ax.set(title=f"{title}: {metric}", ylim=(0, 1))
    costs = report["costs"]
    ax = axes[2]
    for name, style in (("gallery", "o"), ("compatible", "s")):
        ax.plot(costs[name]["macs"] / 1e6, pairs["paragon" if name == "gallery" else name]
                ["real_shot"]["recall_at_10"], style, label=name)  # fmt: skip
    ax.set(xscale="log", xlabel="query model MACs (millions)", ylabel="real-shot recall@10",
           title="cost vs recall")  # fmt: skip
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def embed_all(
    embed: Callable[[Sequence[np.ndarray]], np.ndarray],
    gallery: Sequence[np.ndarray],
    shots: Sequence[np.ndarray],
) -> Embeddings:
    return Embeddings(gallery=embed(gallery), shots=embed(shots))
