"""The item's region: the foreground box (processors/roi.py), refined by a learned box regressor
when one is installed.

The regressor (trained on SYNTHETIC scenes by training/detector.py, served by ONNX Runtime)
sees the whole image at a small size plus the foreground box, and predicts the item's box. It
exists because the foreground rule assumes a plain backdrop: on gradients, two-tone rooms or
props it grows the box over the background. Inside a learned box the backdrop colour is
re-estimated from a ring around it, so colour features still count only the item's pixels.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from processors.embedding import onnx_session
from processors.roi import Box, Region, foreground_region, otsu

DETECTOR_NAME = "roi-box-regressor"


@dataclass(frozen=True)
class DetectorCard:
    model_version: str
    input_size: int
    sha256: str

    @classmethod
    def read(cls, path: Path) -> DetectorCard:
        raw = json.loads(path.read_text())
        return cls(raw["model_version"], int(raw["input_size"]), raw["sha256"])

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.__dict__, indent=2))


def detector_path(models_dir: Path) -> Path:
    return models_dir / f"{DETECTOR_NAME}.onnx"


def detector_inputs(
    images: Sequence[np.ndarray], priors: Sequence[Box], size: int
) -> tuple[np.ndarray, np.ndarray]:
    """What the regressor sees: images at ``size`` px in [0, 1] NCHW, and the foreground boxes
    as fractions of the image (x0, y0, x1, y1). Shared by training and serving."""
    pixels = np.empty((len(images), 3, size, size), dtype=np.float32)
    boxes = np.empty((len(images), 4), dtype=np.float32)
    for i, (rgb, b) in enumerate(zip(images, priors, strict=True)):
        small = Image.fromarray(rgb).resize((size, size), Image.Resampling.BILINEAR)
        pixels[i] = np.asarray(small, dtype=np.float32).transpose(2, 0, 1) / 255.0
        h, w = rgb.shape[:2]
        boxes[i] = (b.x0 / w, b.y0 / h, b.x1 / w, b.y1 / h)
    return pixels, boxes


def to_box(fractions: np.ndarray, width: int, height: int) -> Box:
    x0, y0, x1, y1 = (float(v) for v in np.clip(fractions, 0.0, 1.0))
    bx0, by0 = int(np.floor(min(x0, x1) * width)), int(np.floor(min(y0, y1) * height))
    bx1 = max(bx0 + 1, int(np.ceil(max(x0, x1) * width)))
    by1 = max(by0 + 1, int(np.ceil(max(y0, y1) * height)))
    return Box(bx0, by0, min(bx1, width), min(by1, height))


def region_in_box(rgb: np.ndarray, box: Box, fallback: Region, ring: int = 3) -> Region:
    """The item's pixels inside ``box``: those far from the backdrop seen just around it."""
    h, w = rgb.shape[:2]
    outer = rgb[max(0, box.y0 - ring) : box.y1 + ring, max(0, box.x0 - ring) : box.x1 + ring]
    keep = np.ones(outer.shape[:2], dtype=bool)
    keep[
        box.y0 - max(0, box.y0 - ring) : box.y0 - max(0, box.y0 - ring) + box.height,
        box.x0 - max(0, box.x0 - ring) : box.x0 - max(0, box.x0 - ring) + box.width,
    ] = False
    background = (
        np.median(outer[keep], axis=0).astype(np.uint8) if keep.any() else fallback.background
    )
    inside = rgb[box.y0 : box.y1, box.x0 : box.x1].astype(np.int16)
    dist = np.abs(inside - background.astype(np.int16)).max(axis=2).astype(np.uint8)
    local = dist > max(16.0, otsu(dist))
    if local.mean() < 0.05:
        local[:] = True
    mask = np.zeros((h, w), dtype=bool)
    mask[box.y0 : box.y1, box.x0 : box.x1] = local
    return Region(box, mask, background)


class RegionFinder:
    """Foreground boxes, refined by the learned regressor when ``model_path`` is given."""

    def __init__(self, model_path: Path | None = None, threads: int = 0) -> None:
        self.card: DetectorCard | None = None
        self._session: ort.InferenceSession | None = None
        if model_path is not None:
            if not model_path.exists():
                raise FileNotFoundError(
                    f"{model_path} is missing: run `stylestream train attributes` first"
                )
            self.card = DetectorCard.read(model_path.with_suffix(".json"))
            self._session = onnx_session(model_path, threads)

    @property
    def model_version(self) -> str:
        return self.card.model_version if self.card else "foreground-box"

    def find(self, images: Sequence[np.ndarray]) -> list[Region]:
        priors = [foreground_region(rgb) for rgb in images]
        if self._session is None or self.card is None or not images:
            return priors
        pixels, boxes = detector_inputs(images, [p.box for p in priors], self.card.input_size)
        predicted = self._session.run(None, {"image": pixels, "prior": boxes})[0]
        return [
            region_in_box(rgb, to_box(frac, rgb.shape[1], rgb.shape[0]), prior)
            for rgb, frac, prior in zip(images, predicted, priors, strict=True)
        ]
