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


def train_gallery(
    spec: EncoderSpec,
    images: np.ndarray,
    config: TrainConfig,
    shots_per_photo: int = 3,
    log: Callable[[str], None] = print,
) -> Any:
    """Symmetric InfoNCE between a cached shot and its item's cached clean photo, through the
    trained blocks (``spec.trainable_from`` on) only."""
    import torch

    if not spec.trainable_from:
        raise ValueError("a cached gallery training needs frozen blocks (trainable_from > 0)")
    rng = seeded(config)
    encoder = build_encoder(spec).eval()
    frozen = FrozenFeatures(encoder, spec, config.threads)
    log(f"  caching frozen features of {len(images)} photos and {shots_per_photo} shots each")
    clean = frozen([to_rgb(g) for g in images])
    shots = np.stack([frozen(shots_of(images, rng)) for _ in range(shots_per_photo)])

    def batch_loss(rows: np.ndarray) -> Any:
        drawn = rng.integers(shots_per_photo, size=len(rows))
        q = encoder.tail(torch.from_numpy(shots[drawn, rows].astype(np.float32)))
        k = encoder.tail(torch.from_numpy(clean[rows].astype(np.float32)))
        return info_nce(q, k, config.temperature)

    label = f"{spec.variant}@{spec.image_size} gallery"
    return fit(encoder, config, len(images), rng, batch_loss, lambda m: log(f"  {label} {m}"))
