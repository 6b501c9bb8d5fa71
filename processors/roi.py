"""The item's region of interest: a foreground box separated from the background.

Method (documented in README): product photos are shot on a plain backdrop, so
1. the background colour is the median of the image's border pixels;
2. each pixel's distance to it is its largest per-channel difference (0..255);
3. foreground = distance above a threshold: Otsu's threshold on the distance histogram,
   never below ``min_threshold`` (sensor noise, JPEG ringing);
4. the box spans the rows and columns holding at least ``min_line_fraction`` of foreground
   pixels (isolated specks do not stretch it), grown by ``margin``;
5. with too little foreground the whole image is the box.
The mask is returned too: colour features are computed on foreground pixels inside the box.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Box:
    x0: int
    y0: int
    x1: int  # exclusive
    y1: int  # exclusive

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    def as_list(self) -> list[int]:
        return [self.x0, self.y0, self.x1, self.y1]

    def iou(self, other: Box) -> float:
        ix = max(0, min(self.x1, other.x1) - max(self.x0, other.x0))
        iy = max(0, min(self.y1, other.y1) - max(self.y0, other.y0))
        inter = ix * iy
        union = self.width * self.height + other.width * other.height - inter
        return inter / union if union else 0.0


@dataclass(frozen=True)
class Region:
    box: Box
    mask: np.ndarray  # bool (H, W): foreground pixels
    background: np.ndarray  # uint8 (3,): the estimated backdrop colour


def otsu(values: np.ndarray) -> float:
    hist = np.bincount(values.ravel(), minlength=256).astype(np.float64)
    total = hist.sum()
    if total == 0:
        return 0.0
    levels = np.arange(256, dtype=np.float64)
    w0 = np.cumsum(hist)
    w1 = total - w0
    m0 = np.cumsum(hist * levels)
    mean_all = m0[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mean_all * w0 / total - m0) ** 2 / (w0 * w1 / total)
    between = np.nan_to_num(between)
    return float(np.argmax(between))


def foreground_region(
    rgb: np.ndarray,
    *,
    min_threshold: int = 16,
    min_line_fraction: float = 0.02,
    min_foreground_fraction: float = 0.005,
    margin: float = 0.04,
) -> Region:
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB array, got shape {rgb.shape}")
    h, w = rgb.shape[:2]
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]]).reshape(-1, 3)
    background = np.median(border, axis=0).astype(np.uint8)
    dist = np.abs(rgb.astype(np.int16) - background.astype(np.int16)).max(axis=2).astype(np.uint8)
    threshold = max(float(min_threshold), otsu(dist))
    mask = dist > threshold
    full = Box(0, 0, w, h)
    if mask.mean() < min_foreground_fraction:
        return Region(full, np.ones((h, w), dtype=bool), background)
    rows = np.flatnonzero(mask.sum(axis=1) >= max(1, min_line_fraction * w))
    cols = np.flatnonzero(mask.sum(axis=0) >= max(1, min_line_fraction * h))
    if rows.size == 0 or cols.size == 0:
        return Region(full, mask, background)
    mx, my = round(margin * w), round(margin * h)
    box = Box(
        max(0, int(cols[0]) - mx),
        max(0, int(rows[0]) - my),
        min(w, int(cols[-1]) + 1 + mx),
        min(h, int(rows[-1]) + 1 + my),
    )
    return Region(box, mask, background)


def square_crop(rgb: np.ndarray, region: Region) -> np.ndarray:
    """The box padded to a square with the backdrop colour, so resizing keeps the item's shape."""
    b = region.box
    crop = rgb[b.y0 : b.y1, b.x0 : b.x1]
    side = max(b.width, b.height)
    out = np.empty((side, side, 3), dtype=np.uint8)
    out[:] = region.background
    oy, ox = (side - b.height) // 2, (side - b.width) // 2
    out[oy : oy + b.height, ox : ox + b.width] = crop
    return out
