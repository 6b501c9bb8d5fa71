"""How every bench judges a ranking: one recall@k, one MRR/NDCG judge, and one visual-only
ranking (the first stage alone), so figures from the demo, the click loop and the head bench
mean the same thing."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from processors.ranking import VISUAL_ONLY
from search import Filters, SearchService


def recall_at_k(relevant: np.ndarray, findable: np.ndarray | int | None = None) -> float:
    """Mean over queries of (relevant results in the top k) / (relevant ones findable, at most
    k). ``relevant``: (queries, k) booleans; ``findable`` defaults to k."""
    relevant = np.asarray(relevant, dtype=bool)
    if relevant.size == 0:
        return 0.0
    k = relevant.shape[1]
    found = np.minimum(k, np.asarray(k if findable is None else findable, dtype=np.float64))
    per_query = np.divide(relevant.sum(1), found, out=np.zeros(len(relevant)), where=found > 0)
    return float(per_query.mean())


def padded(rows: Sequence[Sequence[bool]], k: int) -> np.ndarray:
    """Ragged per-query hit lists as a (queries, k) matrix, missing places counting as misses."""
    return np.array([list(r[:k]) + [False] * (k - len(r[:k])) for r in rows], dtype=bool)


def judge(
    searches: Sequence[tuple[Any, Sequence[Mapping[str, Any]]]],
    catalogue_counts: Mapping[str, int],
    relevance: Callable[..., float],
    k: int = 10,
) -> dict[str, float]:
    """Recall@k (relevant = the query's ``category``; of at most k findable), MRR of the first
    relevant result, and NDCG@k on the graded ``relevance``."""
    if not searches:
        return {"queries": 0, "recall_at_10": 0.0, "mrr": 0.0, "ndcg_at_10": 0.0}
    hits = padded([[r.get("category") == q.category for r in res] for q, res in searches], k)
    findable = np.array([min(k, catalogue_counts.get(q.category, 0)) for q, _ in searches])
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    rrs, ndcgs = [], []
    for (query, results), row, n in zip(searches, hits, findable, strict=True):
        first = np.flatnonzero(row)
        rrs.append(1.0 / (first[0] + 1) if len(first) else 0.0)
        grades = np.array([relevance(query, r) for r in results[:k]] + [0.0] * k)[:k]
        idcg = float(discounts[:n].sum())
        ndcgs.append(float((grades * discounts).sum()) / idcg if idcg else 0.0)
    return {
        "queries": len(searches),
        "recall_at_10": round(recall_at_k(hits, findable), 4),
        "mrr": round(float(np.mean(rrs)), 4),
        "ndcg_at_10": round(float(np.mean(ndcgs)), 4),
    }


def served_and_visual(
    service: SearchService,
    images: Sequence[np.ndarray],
    categories: Sequence[str],
    filters: Filters | None = None,
    k: int = 10,
) -> tuple[float, float]:
    """recall@k of the served two-stage search and of its visual stage alone (relevant: the
    query's catalogue category), from one embedding and one index search per 100 queries."""
    served: list[list[bool]] = []
    visual: list[list[bool]] = []
    for start in range(0, len(images), 100):
        batch = images[start : start + 100]
        stages = service.stage_one(batch, service.candidates, filters)
        for stage, want in zip(stages, categories[start : start + 100], strict=True):
            for weights, out in ((None, served), (VISUAL_ONLY, visual)):
                ranked = service.rank(stage, k, weights=weights)
                out.append([r.item.row.category == want for r in ranked])
    return recall_at_k(padded(served, k)), recall_at_k(padded(visual, k))
