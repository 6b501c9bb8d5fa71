"""Synthetic vectors for scale tests (clearly not product embeddings): a Gaussian mixture on
the unit sphere, so neighbourhoods have structure like real embeddings, plus exact ground truth."""

from __future__ import annotations

import numpy as np


def clustered(
    n: int, dim: int, clusters: int = 1000, spread: float = 0.35, seed: int = 0
) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    out = np.empty((n, dim), dtype=np.float32)
    step = 100_000
    for start in range(0, n, step):
        m = min(step, n - start)
        picks = rng.integers(0, clusters, size=m)
        noise = rng.normal(scale=spread / np.sqrt(dim), size=(m, dim)).astype(np.float32)
        block = centres[picks] + noise
        out[start : start + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def exact_top_k(data: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Brute-force inner-product top k (the recall baseline), in chunks to bound memory."""
    best_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_ids = np.zeros((len(queries), k), dtype=np.int64)
    step = 200_000
    for start in range(0, len(data), step):
        scores = queries @ data[start : start + step].T
        idx = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        cand_scores = np.take_along_axis(scores, idx, axis=1)
        merged_scores = np.concatenate([best_scores, cand_scores], axis=1)
        merged_ids = np.concatenate([best_ids, idx + start], axis=1)
        order = np.argsort(-merged_scores, axis=1)[:, :k]
        best_scores = np.take_along_axis(merged_scores, order, axis=1)
        best_ids = np.take_along_axis(merged_ids, order, axis=1)
    return best_ids
