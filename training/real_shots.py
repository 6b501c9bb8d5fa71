"""SYNTHETIC "real-shot" queries: catalogue photos degraded the way shoppers' photos are (the
item smaller or larger in the frame, rotated, partly cropped, on a coloured or cluttered
backdrop, under a colour cast, blurred, JPEG-compressed), each with the catalogue item it shows
as ground truth. No shopper photo exists offline; every image made here is generated and named
so in every report.

Fashion-MNIST photos are light garments on black: the black is the backdrop, so the grey level
is the garment's mask, and the garment is pasted onto a new backdrop through it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

BACKDROPS = ("flat", "gradient", "clutter", "noise")


@dataclass(frozen=True)
class ShotConfig:
    size: int = 128  # the shot's side in pixels
    scale: tuple[float, float] = (0.5, 1.0)  # the garment's side over the shot's
    max_rotation_deg: float = 25.0
    max_shift: float = 0.2  # of the shot's side: the garment may leave the frame (a crop)
    blur: tuple[float, float] = (0.0, 1.5)  # Gaussian radius, pixels
    jpeg_quality: tuple[int, int] = (20, 85)
    cast: float = 0.25  # per-channel gain spread of the colour cast


def _backdrop(rng: np.random.Generator, size: int) -> Image.Image:
    kind = BACKDROPS[int(rng.integers(len(BACKDROPS)))]
    colour = rng.integers(0, 256, size=3)
    if kind == "flat":
        return Image.new("RGB", (size, size), tuple(int(c) for c in colour))
    if kind == "gradient":
        other = rng.integers(0, 256, size=3)
        t = np.linspace(0.0, 1.0, size)[:, None, None]
        ramp = colour * (1 - t) + other * t
        return Image.fromarray(np.broadcast_to(ramp, (size, size, 3)).astype(np.uint8))
    if kind == "noise":
        noise = rng.normal(colour, 40.0, size=(size // 8, size // 8, 3)).clip(0, 255)
        small = Image.fromarray(noise.astype(np.uint8))
        return small.resize((size, size), Image.Resampling.BICUBIC)
    image = Image.new("RGB", (size, size), tuple(int(c) for c in colour))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(4, 12))):  # clutter: boxes and blobs of other colours
        x0, y0 = rng.integers(-size // 4, size, size=2)
        w, h = rng.integers(size // 8, size // 2, size=2)
        fill = tuple(int(c) for c in rng.integers(0, 256, size=3))
        shape = draw.rectangle if rng.random() < 0.5 else draw.ellipse
        shape((int(x0), int(y0), int(x0 + w), int(y0 + h)), fill=fill)
    return image.filter(ImageFilter.GaussianBlur(1.0))


def degrade(grey: np.ndarray, rng: np.random.Generator, config: ShotConfig) -> np.ndarray:
    """One SYNTHETIC shot (RGB uint8, ``config.size`` square) of a 28x28 grey catalogue photo."""
    size = config.size
    side = max(8, int(size * rng.uniform(*config.scale)))
    garment = Image.fromarray(grey).resize((side, side), Image.Resampling.BICUBIC)
    mask = Image.fromarray(np.clip(grey.astype(np.float32) * 4, 0, 255).astype(np.uint8))
    mask = mask.resize((side, side), Image.Resampling.BILINEAR)
    angle = float(rng.uniform(-config.max_rotation_deg, config.max_rotation_deg))
    garment = garment.rotate(angle, Image.Resampling.BILINEAR, expand=True)
    mask = mask.rotate(angle, Image.Resampling.BILINEAR, expand=True)
    shot = _backdrop(rng, size)
    centre = size / 2 + rng.uniform(-config.max_shift, config.max_shift, size=2) * size
    corner = (int(centre[0] - garment.width / 2), int(centre[1] - garment.height / 2))
    shot.paste(garment.convert("RGB"), corner, mask)
    pixels = np.asarray(shot, dtype=np.float32)
    gains = 1.0 + rng.uniform(-config.cast, config.cast, size=3)
    shot = Image.fromarray((pixels * gains).clip(0, 255).astype(np.uint8))
    radius = float(rng.uniform(*config.blur))
    if radius > 0.2:
        shot = shot.filter(ImageFilter.GaussianBlur(radius))
    buffer = io.BytesIO()
    shot.save(buffer, format="JPEG", quality=int(rng.integers(*config.jpeg_quality)))
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def real_shots(images: np.ndarray, seed: int, config: ShotConfig | None = None) -> list[np.ndarray]:
    """One SYNTHETIC shot per catalogue photo, reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    return [degrade(g, rng, config or ShotConfig()) for g in images]
