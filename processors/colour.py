"""Colour features inside the item's region: shares of named palette colours, in CIE Lab.

Pixels are the foreground pixels within the ROI box (the backdrop must not vote). Each is
assigned to its nearest palette colour in Lab (perceptually closer than RGB); the feature
vector is the palette shares followed by the mean L, a, b scaled to about [-1, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from processors.roi import Region

PALETTE: dict[str, tuple[int, int, int]] = {
    "black": (20, 20, 20),
    "white": (245, 245, 245),
    "grey": (128, 128, 128),
    "red": (200, 30, 40),
    "orange": (240, 130, 30),
    "yellow": (240, 220, 50),
    "green": (40, 150, 60),
    "blue": (40, 80, 200),
    "navy": (25, 35, 90),
    "purple": (120, 50, 150),
    "pink": (240, 150, 190),
    "brown": (120, 75, 40),
    "beige": (220, 200, 160),
}
PALETTE_NAMES: tuple[str, ...] = tuple(PALETTE)
COLOUR_VECTOR_DIM = len(PALETTE_NAMES) + 3


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB uint8 (..., 3) -> CIE Lab (D65) float32 (..., 3)."""
    c = rgb.astype(np.float32) / 255.0
    c = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    m = np.array(
        [[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]],
        dtype=np.float32,
    )
    xyz = c @ m.T / np.array([0.95047, 1.0, 1.08883], dtype=np.float32)
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16.0 / 116.0)
    lab = np.stack(
        [
            116.0 * f[..., 1] - 16.0,
            500.0 * (f[..., 0] - f[..., 1]),
            200.0 * (f[..., 1] - f[..., 2]),
        ],
        axis=-1,
    )
    return lab.astype(np.float32)


_PALETTE_LAB = rgb_to_lab(np.array(list(PALETTE.values()), dtype=np.uint8))


@dataclass(frozen=True)
class ColourFeatures:
    fractions: dict[str, float]  # palette name -> share of the item's pixels
    primary: str
    vector: list[float]  # COLOUR_VECTOR_DIM floats


def colour_features(rgb: np.ndarray, region: Region, max_pixels: int = 20_000) -> ColourFeatures:
    b = region.box
    pixels = rgb[b.y0 : b.y1, b.x0 : b.x1][region.mask[b.y0 : b.y1, b.x0 : b.x1]]
    if pixels.shape[0] == 0:
        pixels = rgb[b.y0 : b.y1, b.x0 : b.x1].reshape(-1, 3)
    if pixels.shape[0] > max_pixels:  # a deterministic stride keeps big images cheap
        pixels = pixels[:: pixels.shape[0] // max_pixels + 1]
    lab = rgb_to_lab(pixels)
    d = ((lab[:, None, :] - _PALETTE_LAB[None, :, :]) ** 2).sum(axis=2)
    counts = np.bincount(d.argmin(axis=1), minlength=len(PALETTE_NAMES)).astype(np.float64)
    shares = counts / counts.sum()
    mean = lab.mean(axis=0) / np.array([100.0, 128.0, 128.0])
    fractions = {n: round(float(s), 4) for n, s in zip(PALETTE_NAMES, shares, strict=True) if s > 0}
    return ColourFeatures(
        fractions=fractions,
        primary=PALETTE_NAMES[int(shares.argmax())],
        vector=[float(x) for x in np.concatenate([shares, mean])],
    )
