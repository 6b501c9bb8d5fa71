"""The vectors of the binary-index bench: real base embeddings of the Fashion-MNIST catalogue
photos (computed once per model version, cached), held-out test photos as queries, and, past
the 60,000 real ones, SYNTHETIC vectors: real embeddings jittered with Gaussian noise, named so
in the report."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from processors.embedding import OnnxEmbedder
from training.datasets import load_split, to_rgb
from training.real_shots import real_shots

JITTER_SD = 0.5  # of each dimension's standard deviation over the real embeddings


def real_embeddings(
    embedder: OnnxEmbedder, cache_dir: Path, split: str, limit: int, log: Callable[[str], None]
) -> np.ndarray:
    """Base embeddings of the first ``limit`` photos of ``split``, cached as float16."""
    cache = cache_dir / f"fmnist-{split}-{limit}-{embedder.model_version}.npy"
    if cache.exists():
        cached: np.ndarray = np.load(cache).astype(np.float32)
        return cached
    images, _ = load_split(split)
    images = images[:limit]
    log(f"embedding {len(images)} {split} photos with {embedder.model_version} (cached after)")
    out = np.empty((len(images), embedder.dim), dtype=np.float32)
    step = 2000
    for start in range(0, len(images), step):
        out[start : start + step] = embedder.embed(
            [to_rgb(g) for g in images[start : start + step]]
        )
        log(f"  {min(start + step, len(images))}/{len(images)}")
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.save(cache, out.astype(np.float16))
    return out.astype(np.float16).astype(np.float32)  # what a second run reads back


def shot_embeddings(
    embedder: OnnxEmbedder, cache_dir: Path, limit: int, log: Callable[[str], None]
) -> np.ndarray:
    """Base embeddings of SYNTHETIC real shots of the first ``limit`` test photos (the query
    set of issue 14's evaluations, training/real_shots.py), cached as float16."""
    cache = cache_dir / f"fmnist-t10k-shots-{limit}-{embedder.model_version}.npy"
    if cache.exists():
        cached: np.ndarray = np.load(cache).astype(np.float32)
        return cached
    log(f"embedding {limit} SYNTHETIC real shots with {embedder.model_version} (cached after)")
    shots = real_shots(load_split("t10k")[0][:limit], seed=7)
    out = embedder.embed(shots)
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.save(cache, out.astype(np.float16))
    return out.astype(np.float16).astype(np.float32)


def filled(real: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """``n`` unit vectors: the real ones first, then SYNTHETIC jittered copies of random real
    ones (noise of ``JITTER_SD`` per-dimension standard deviations)."""
    if n <= len(real):
        return real[:n].copy()
    rng = np.random.default_rng(seed)
    sd = real.std(axis=0) * JITTER_SD
    out = np.empty((n, real.shape[1]), dtype=np.float32)
    out[: len(real)] = real
    step = 100_000
    for start in range(len(real), n, step):
        m = min(step, n - start)
        block = real[rng.integers(len(real), size=m)] + rng.standard_normal((m, real.shape[1])) * sd
        out[start : start + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out
