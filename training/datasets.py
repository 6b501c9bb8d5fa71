"""Debian's Fashion-MNIST (real Zalando product photos, 28x28 grey) as numpy arrays."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")
CLASSES = (
    "t-shirt-top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle-boot",
)


def load_split(split: str, root: Path = DEFAULT_DIR) -> tuple[np.ndarray, np.ndarray]:
    """``split`` is ``train`` (60k, the catalogue) or ``t10k`` (10k, held-out queries)."""
    if split not in ("train", "t10k"):
        raise ValueError(f"unknown split {split!r}: use 'train' or 't10k'")
    images_path = root / f"{split}-images-idx3-ubyte.gz"
    labels_path = root / f"{split}-labels-idx1-ubyte.gz"
    if not images_path.exists():
        raise FileNotFoundError(
            f"{images_path} is missing: install Debian's dataset-fashion-mnist package"
        )
    with gzip.open(images_path, "rb") as f:
        images = np.frombuffer(f.read(), dtype=np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(labels_path, "rb") as f:
        labels = np.frombuffer(f.read(), dtype=np.uint8, offset=8)
    return images, labels


def to_rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[..., None], 3, axis=2)
