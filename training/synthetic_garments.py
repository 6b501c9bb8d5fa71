"""SYNTHETIC garment images with known labels, for training and judging what Fashion-MNIST cannot
teach (it is grey, centred and unlabelled beyond category): colour, pattern, sleeve length,
neckline, garment length and the item's position.

Every image is a drawn silhouette (top, dress, trousers, skirt, outerwear, shoes, bag) filled
with a pattern of palette colours, at a random position and scale on a varied backdrop (plain,
gradient, two-tone wall/floor, noise, with distracting props). Labels are taxonomy keys; the
box is the exact bounding box of the drawn item. These are not product photos and are never
presented as such.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from processors.colour import PALETTE, PALETTE_NAMES

KINDS = ("top", "dress", "trousers", "skirt", "outerwear", "shoes", "bag")
PATTERNS = ("solid", "striped", "checked", "dotted", "colour-block")
SLEEVES = ("sleeveless", "short", "long")
NECKLINES = ("crew", "v-neck", "square", "turtleneck")
COLOUR_LABEL_SHARE = 0.15  # a colour is labelled when it covers at least this share of the item
_PALETTE_RGB = np.array([PALETTE[n] for n in PALETTE_NAMES], dtype=np.float32)


@dataclass(frozen=True)
class SyntheticGarment:
    image: np.ndarray  # (H, W, 3) uint8
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive) of the drawn item
    kind: str
    attributes: tuple[str, ...]  # taxonomy keys


Poly = list[tuple[float, float]]


def _top_parts(rng: np.random.Generator, sleeve: str, hem: float) -> list[Poly]:
    """Torso and sleeves in unit coordinates (x right, y down) of a width-1 garment."""
    sh = 0.12  # shoulder line
    torso: Poly = [
        (0.28, sh - 0.06), (0.72, sh - 0.06), (0.75, sh), (0.74, hem), (0.26, hem), (0.25, sh)
    ]  # fmt: skip
    parts = [torso]
    if sleeve == "short":
        reach = rng.uniform(0.3, 0.38)
        parts += [
            [(0.27, sh - 0.05), (0.05, reach - 0.05), (0.14, reach + 0.02), (0.26, sh + 0.16)],
            [(0.73, sh - 0.05), (0.95, reach - 0.05), (0.86, reach + 0.02), (0.74, sh + 0.16)],
        ]
    elif sleeve == "long":
        parts += [
            [(0.27, sh - 0.05), (0.03, 0.85), (0.15, 0.88), (0.26, sh + 0.2)],
            [(0.73, sh - 0.05), (0.97, 0.85), (0.85, 0.88), (0.74, sh + 0.2)],
        ]
    return parts


def _neck_cut(neckline: str, sh: float = 0.12) -> tuple[str, Poly]:
    if neckline == "v-neck":
        return "cut", [(0.4, sh - 0.07), (0.6, sh - 0.07), (0.5, sh + 0.2)]
    if neckline == "square":
        return "cut", [(0.38, sh - 0.07), (0.62, sh - 0.07), (0.62, sh + 0.08), (0.38, sh + 0.08)]
    if neckline == "turtleneck":
        return "add", [(0.4, sh - 0.14), (0.6, sh - 0.14), (0.61, sh - 0.04), (0.39, sh - 0.04)]
    return "ellipse", [(0.4, sh - 0.12), (0.6, sh + 0.04)]


def _shape(
    kind: str, rng: np.random.Generator, change: Mapping[str, str] | None = None
) -> tuple[list[Poly], list[tuple[str, Poly]], float, dict[str, str]]:
    """Polygons to fill, neck/handle cuts, height/width ratio, and the labels they imply;
    ``change``: a sleeve, neckline or length to draw instead of the random one (the draw still
    happens, so the rest of the scene stays as it would have been up to the changed part)."""
    change = change or {}
    labels: dict[str, str] = {}
    cuts: list[tuple[str, Poly]] = []
    if kind in ("top", "dress", "outerwear"):
        sleeve = "long" if kind == "outerwear" else SLEEVES[rng.integers(len(SLEEVES))]
        sleeve = change.get("sleeve", sleeve) if kind != "outerwear" else sleeve
        labels["sleeve"] = sleeve
        if kind == "top":
            labels["category"] = "pullover" if sleeve == "long" else "t-shirt-top"
            parts, ratio = _top_parts(rng, sleeve, 1.0), rng.uniform(0.95, 1.15)
        elif kind == "outerwear":
            labels["category"] = "coat"
            ratio = rng.uniform(1.25, 1.6)
            parts = _top_parts(rng, sleeve, 1.0)
            cuts.append(("line", [(0.5, 0.1), (0.5, 1.0)]))
        else:
            labels["category"] = "dress"
            length = change.get("length", ("mini", "knee", "maxi")[rng.integers(3)])
            labels["length"] = length
            ratio = {"mini": 1.35, "knee": 1.8, "maxi": 2.5}[length] * rng.uniform(0.93, 1.07)
            waist = 0.42 / ratio + 0.05
            parts = _top_parts(rng, sleeve, waist + 0.02)
            flare = rng.uniform(0.05, 0.15)
            parts.append([(0.3, waist), (0.7, waist), (0.8 + flare, 1.0), (0.2 - flare, 1.0)])
        if kind != "outerwear":
            neckline = change.get("neckline", NECKLINES[rng.integers(len(NECKLINES))])
            labels["neckline"] = neckline
            cuts.append(_neck_cut(neckline))
        else:
            cuts.append(_neck_cut("v-neck"))
        return parts, cuts, ratio, labels
    if kind == "skirt":
        length = change.get("length", ("mini", "knee", "maxi")[rng.integers(3)])
        labels.update(category="skirt", length=length)
        ratio = {"mini": 0.6, "knee": 0.95, "maxi": 1.6}[length] * rng.uniform(0.93, 1.07)
        flare = rng.uniform(0.0, 0.12)
        return [[(0.2, 0.0), (0.8, 0.0), (0.9 + flare, 1.0), (0.1 - flare, 1.0)]], [], ratio, labels
    if kind == "trousers":
        length = change.get("length", ("shorts", "full-length")[rng.integers(2)])
        labels.update(category="trouser", length=length)
        ratio = (0.75 if length == "shorts" else 2.0) * rng.uniform(0.93, 1.07)
        crotch = 0.35 if length == "shorts" else 0.2
        legs: list[Poly] = [[(0.1, 0.0), (0.9, 0.0), (0.95, 1.0), (0.55, 1.0), (0.5, crotch)]]
        legs[0] += [(0.45, 1.0), (0.05, 1.0)]
        return legs, [], ratio, labels
    if kind == "shoes":
        boot = bool(rng.integers(2))
        labels["category"] = "ankle-boot" if boot else "sneaker"
        if boot:
            shape = [(0.15, 0.0), (0.5, 0.0), (0.55, 0.55), (1.0, 0.72), (1.0, 1.0), (0.1, 1.0)]
            return [shape], [], rng.uniform(0.8, 0.95), labels
        shape = [(0.1, 0.15), (0.45, 0.0), (0.7, 0.35), (1.0, 0.55), (1.0, 1.0), (0.0, 1.0)]
        return [shape], [], rng.uniform(0.4, 0.5), labels
    labels["category"] = "bag"
    body = [(0.05, 0.35), (0.95, 0.35), (1.0, 1.0), (0.0, 1.0)]
    handle = [(0.25, 0.0), (0.75, 0.45)]
    return [body], [("handle", handle)], rng.uniform(0.85, 1.05), labels


def _pattern_indices(
    pattern: str, h: int, w: int, rng: np.random.Generator, a: int, b: int
) -> np.ndarray:
    """(h, w) palette indices: ``a`` is the main colour, ``b`` the second."""
    yy, xx = np.mgrid[0:h, 0:w]
    period = max(4, int(rng.uniform(0.08, 0.18) * max(h, w)))
    if pattern == "striped":
        on = (yy // (period // 2)) % 2 == 1
    elif pattern == "checked":
        on = ((yy // (period // 2)) + (xx // (period // 2))) % 2 == 1
    elif pattern == "dotted":
        r = period * 0.22
        on = ((yy % period - period / 2) ** 2 + (xx % period - period / 2) ** 2) < r * r
    elif pattern == "colour-block":
        on = (xx > w / 2) if rng.integers(2) else (yy > h * rng.uniform(0.4, 0.6))
    else:
        on = np.zeros((h, w), dtype=bool)
    return np.where(on, b, a)


def _backdrop(h: int, w: int, rng: np.random.Generator, avoid: np.ndarray) -> np.ndarray:
    def colour() -> np.ndarray:
        for _ in range(20):
            c = rng.uniform(0, 255, 3).astype(np.float32)
            if np.abs(c - avoid).max() > 60:
                return c
        return 255 - avoid

    style = rng.choice(["plain", "gradient", "two-tone", "noise", "props"])
    img = np.empty((h, w, 3), dtype=np.float32)
    c1 = colour()
    img[:] = c1
    if style == "gradient":
        c2 = colour()
        t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
        img = (c1 * (1 - t) + c2 * t + np.zeros((1, w, 1), dtype=np.float32)).astype(np.float32)
    elif style == "two-tone":
        split = int(h * rng.uniform(0.55, 0.85))
        img[split:] = colour()
    elif style == "noise":
        coarse = rng.normal(0, 40, (max(2, h // 16), max(2, w // 16), 3))
        up = Image.fromarray(np.clip(coarse + 128, 0, 255).astype(np.uint8)).resize((w, h))
        img += np.asarray(up, dtype=np.float32) - 128
    elif style == "props":
        canvas = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(canvas)
        for _ in range(int(rng.integers(1, 4))):
            x, y = rng.uniform(0, w), rng.uniform(0, h)
            r = rng.uniform(0.04, 0.1) * min(h, w)
            draw.ellipse([x - r, y - r, x + r, y + r], fill=tuple(int(v) for v in colour()))
        img = np.asarray(canvas, dtype=np.float32)
    return img


def make_garment(
    rng: np.random.Generator,
    kind: str | None = None,
    size: tuple[int, int] | None = None,
    change: Mapping[str, str] | None = None,
) -> SyntheticGarment:
    """One labelled synthetic scene; ``size`` is (width, height), random 140-200 px if None.
    ``change``: values to draw instead of the random ones ("colour": the main palette colour,
    "colour2" the second, "pattern", "sleeve", "neckline", "length"); every random draw is
    still made, so a change leaves the scene as it was up to the changed part (modifier
    triplets: bench/modify_data.py)."""
    change = change or {}
    kind = kind or KINDS[rng.integers(len(KINDS))]
    w, h = size or (int(rng.integers(140, 201)), int(rng.integers(140, 201)))
    parts, cuts, ratio, labels = _shape(kind, rng, change)
    scale = rng.uniform(0.4, 0.92)
    gh = int(scale * h)
    gw = int(min(gh / ratio, scale * w))
    gh = max(8, int(min(gh, gw * ratio)))
    gw = max(8, gw)
    mask_img = Image.new("L", (gw, gh), 0)
    draw = ImageDraw.Draw(mask_img)

    def px(poly: Poly) -> list[tuple[float, float]]:
        return [(x * (gw - 1), y * (gh - 1)) for x, y in poly]

    for poly in parts:
        draw.polygon(px(poly), fill=255)
    for how, poly in cuts:
        if how == "cut":
            draw.polygon(px(poly), fill=0)
        elif how == "add":
            draw.polygon(px(poly), fill=255)
        elif how == "ellipse":
            draw.ellipse(px(poly), fill=0)
        elif how == "handle":
            draw.ellipse(px(poly), outline=255, width=max(2, gw // 14))
    mask = np.asarray(mask_img) > 127
    pattern = "solid" if rng.random() < 0.35 else PATTERNS[rng.integers(len(PATTERNS))]
    pattern = change.get("pattern", pattern)
    a, b = (int(i) for i in rng.choice(len(PALETTE_NAMES), 2, replace=False))
    if "colour" in change:
        a = PALETTE_NAMES.index(change["colour"])
        b = PALETTE_NAMES.index(change["colour2"]) if "colour2" in change else b
        b = b if b != a else (a + 1) % len(PALETTE_NAMES)
    idx = _pattern_indices(pattern, gh, gw, rng, a, b)
    shares = np.bincount(idx[mask], minlength=len(PALETTE_NAMES)) / max(1, mask.sum())
    jitter = rng.uniform(-12, 12, (len(PALETTE_NAMES), 3)).astype(np.float32)
    fill = _PALETTE_RGB[idx] + jitter[idx]
    shade = np.linspace(1.05, 0.9, gh, dtype=np.float32)[:, None, None]
    fill *= shade
    for how, poly in cuts:
        if how == "line":  # a coat's front opening
            x = int(poly[0][0] * (gw - 1))
            fill[:, max(0, x - 1) : x + 1] *= 0.6
    x0 = int(rng.integers(0, w - gw + 1))
    y0 = int(rng.integers(0, h - gh + 1))
    img = _backdrop(h, w, rng, _PALETTE_RGB[a])
    region = img[y0 : y0 + gh, x0 : x0 + gw]
    region[mask] = fill[mask]
    img += rng.normal(0, 3, img.shape).astype(np.float32)
    out = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    if rng.random() < 0.3:
        out = out.filter(ImageFilter.GaussianBlur(0.6))
    ys, xs = np.nonzero(mask)
    box = (x0 + int(xs.min()), y0 + int(ys.min()), x0 + int(xs.max()) + 1, y0 + int(ys.max()) + 1)
    keys = [f"{group}.{value}" for group, value in labels.items()]
    keys.append(f"pattern.{pattern}")
    keys += [f"colour.{PALETTE_NAMES[i]}" for i in np.flatnonzero(shares >= COLOUR_LABEL_SHARE)]
    return SyntheticGarment(np.asarray(out), box, kind, tuple(sorted(keys)))


def garments(n: int, seed: int) -> Iterator[SyntheticGarment]:
    """``n`` scenes, reproducible from ``seed`` (use different seeds for train and test)."""
    rng = np.random.default_rng(seed)
    for _ in range(n):
        yield make_garment(rng)
