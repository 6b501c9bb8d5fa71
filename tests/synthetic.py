"""Synthetic test images (not real products): a coloured rectangle 'garment' on a plain backdrop."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def synthetic_garment(
    size: tuple[int, int] = (120, 160),
    box: tuple[int, int, int, int] = (30, 40, 90, 130),
    colour: tuple[int, int, int] = (200, 30, 40),
    background: tuple[int, int, int] = (240, 240, 240),
    seed: int = 0,
) -> np.ndarray:
    """(H, W, 3) uint8: ``box`` = x0, y0, x1, y1 (exclusive) filled with ``colour`` plus noise."""
    w, h = size
    rng = np.random.default_rng(seed)
    img = np.empty((h, w, 3), dtype=np.int16)
    img[:] = background
    x0, y0, x1, y1 = box
    img[y0:y1, x0:x1] = colour
    img += rng.integers(-4, 5, size=img.shape, dtype=np.int16)
    return np.clip(img, 0, 255).astype(np.uint8)


def encode(rgb: np.ndarray, fmt: str = "PNG", **kwargs: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format=fmt, **kwargs)
    return buf.getvalue()
