"""The gallery model's training on cached features of its frozen blocks.

A 2-core CPU cannot afford EfficientNet-Lite2 at 260 px end to end (37 minutes an epoch for
4,800 pairs, NOTES.md), and the frozen blocks cost most of a forward pass. So they run once,
through ONNX Runtime (about 5x torch's CPU speed for these depthwise blocks), over each photo
and a fixed set of SYNTHETIC shots of it; each epoch then runs only the trained last stage, on
one of the photo's cached shots drawn at random.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from training.compact import (
    EncoderSpec,
    TrainConfig,
    build_encoder,
    fit,
    info_nce,
    seeded,
    shots_of,
    to_batch,
)
from training.datasets import to_rgb
from training.export import image_graph


def _export_frozen(encoder: Any, size: int, path: Path) -> None:
    import torch

    class Frozen(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.encoder.frozen_part(x)
            return out

    image_graph(Frozen().eval(), torch.zeros(1, 3, size, size), path)


class FrozenFeatures:
    """The frozen blocks' feature maps (float16, to halve the cache) by ONNX Runtime."""

    def __init__(self, encoder: Any, spec: EncoderSpec, threads: int, batch: int = 32) -> None:
        from processors.embedding import onnx_session

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "frozen.onnx"
            _export_frozen(encoder, spec.image_size, path)
            self._session = onnx_session(path.read_bytes(), threads)
        self._size = spec.image_size
        self._batch = batch

    def __call__(self, images: Sequence[np.ndarray]) -> np.ndarray:
        parts = []
        for first in range(0, len(images), self._batch):
            batch = to_batch(images[first : first + self._batch], self._size).numpy()
            parts.append(self._session.run(None, {"image": batch})[0].astype(np.float16))
        return np.concatenate(parts)


class GalleryCache:
    """The frozen blocks' maps of each photo and of ``shots.shape[0]`` fixed SYNTHETIC shots of
    it (``shots``: uint8, shot x photo x H x W x 3, kept for the compatible model's
    distillation)."""

    def __init__(
        self, encoder: Any, spec: EncoderSpec, images: np.ndarray, shots: np.ndarray, threads: int
    ) -> None:
        frozen = FrozenFeatures(encoder, spec, threads)
        self.clean = frozen([to_rgb(g) for g in images])
        self.shots = np.stack([frozen(list(views)) for views in shots])

    def shot_embeddings(self, encoder: Any, batch: int = 256) -> np.ndarray:
        """The trained gallery model's embedding of every cached shot (shot x photo x dim)."""
        import torch

        flat = self.shots.reshape(-1, *self.shots.shape[2:])
        out = []
        with torch.no_grad():
            for first in range(0, len(flat), batch):
                maps = torch.from_numpy(flat[first : first + batch].astype(np.float32))
                out.append(encoder.tail(maps).numpy())
        return np.concatenate(out).reshape(*self.shots.shape[:2], -1)


def fixed_shots(images: np.ndarray, per_photo: int, seed: int) -> np.ndarray:
    """``per_photo`` SYNTHETIC shots of every photo (shot x photo x H x W x 3, uint8)."""
    rng = np.random.default_rng(seed)
    return np.stack([np.stack(shots_of(images, rng)) for _ in range(per_photo)])


def train_gallery(
    spec: EncoderSpec,
    images: np.ndarray,
    shots: np.ndarray,
    config: TrainConfig,
    log: Callable[[str], None] = print,
) -> tuple[Any, GalleryCache]:
    """Symmetric InfoNCE between a cached shot and its item's cached clean photo, through the
    trained blocks (``spec.trainable_from`` on) only; returns the model and the cache."""
    import torch

    if not spec.trainable_from:
        raise ValueError("a cached gallery training needs frozen blocks (trainable_from > 0)")
    rng = seeded(config)
    encoder = build_encoder(spec).eval()
    log(f"  caching frozen features of {len(images)} photos and {len(shots)} shots each")
    cache = GalleryCache(encoder, spec, images, shots, config.threads)

    def batch_loss(rows: np.ndarray) -> Any:
        drawn = rng.integers(len(shots), size=len(rows))
        q = encoder.tail(torch.from_numpy(cache.shots[drawn, rows].astype(np.float32)))
        k = encoder.tail(torch.from_numpy(cache.clean[rows].astype(np.float32)))
        return info_nce(q, k, config.temperature)

    label = f"{spec.variant}@{spec.image_size} gallery"
    fitted = fit(encoder, config, len(images), rng, batch_loss, lambda m: log(f"  {label} {m}"))
    return fitted, cache
