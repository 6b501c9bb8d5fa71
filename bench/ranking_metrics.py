"""The ranking metrics Myntra reports for text search (MRR, MAP, NDCG@10, Precision@50,
Recall@50), for one ranked list against graded relevance; a query counts when it has at least
one fully relevant product (relevance 1)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

NAMES = ("MRR", "MAP", "NDCG@10", "P@50", "R@50")


def query_metrics(ranked: Sequence[int], relevance: np.ndarray) -> dict[str, float]:
    """``ranked``: catalogue rows best first (any length); ``relevance``: every row's grade in
    [0, 1]. Graded gains for NDCG; relevant means grade 1 for the others."""
    relevant = relevance >= 1.0
    total = int(relevant.sum())
    if total == 0:
        return dict.fromkeys(NAMES, 0.0)
    hits = relevant[np.asarray(ranked, dtype=np.int64)] if len(ranked) else np.zeros(0, bool)
    found = np.flatnonzero(hits)
    mrr = 1.0 / (found[0] + 1) if len(found) else 0.0
    precision_at_hit = np.arange(1, len(found) + 1) / (found + 1)
    average_precision = float(precision_at_hit.sum()) / total
    discounts = 1.0 / np.log2(np.arange(2, 12))
    gains = relevance[np.asarray(ranked[:10], dtype=np.int64)] if len(ranked) else np.zeros(0)
    ideal = np.sort(relevance)[::-1][:10]
    ndcg = float((gains * discounts[: len(gains)]).sum() / (ideal * discounts[: len(ideal)]).sum())
    top = int(hits[:50].sum())
    return {
        "MRR": float(mrr),
        "MAP": average_precision,
        "NDCG@10": ndcg,
        "P@50": top / 50,
        "R@50": top / total,
    }


def mean_metrics(rankings: Sequence[Sequence[int]], relevance: np.ndarray) -> dict[str, float]:
    """Means over the queries (rows of ``relevance``) with a relevant product."""
    rows = [
        query_metrics(ranked, relevance[i])
        for i, ranked in enumerate(rankings)
        if (relevance[i] >= 1.0).any()
    ]
    return {n: round(float(np.mean([r[n] for r in rows])), 4) if rows else 0.0 for n in NAMES}
