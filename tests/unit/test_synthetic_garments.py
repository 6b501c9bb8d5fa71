"""The SYNTHETIC garment generator: labels and boxes must be true of the pixels drawn."""

from __future__ import annotations

import numpy as np
import pytest

from processors.colour import PALETTE
from schemas.attributes import BY_KEY
from training.synthetic_garments import KINDS, garments, make_garment

CATEGORY_OF = {
    "top": {"category.t-shirt-top", "category.pullover"},
    "dress": {"category.dress"},
    "trousers": {"category.trouser"},
    "skirt": {"category.skirt"},
    "outerwear": {"category.coat"},
    "shoes": {"category.sneaker", "category.ankle-boot"},
    "bag": {"category.bag"},
}


def test_reproducible_from_the_seed() -> None:
    a, b = next(garments(1, 5)), next(garments(1, 5))
    assert np.array_equal(a.image, b.image) and a.attributes == b.attributes and a.box == b.box
    assert not np.array_equal(a.image, next(garments(1, 6)).image)


@pytest.mark.parametrize("kind", KINDS)
def test_labels_are_taxonomy_keys_and_fit_the_kind(kind: str) -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        g = make_garment(rng, kind)
        assert all(k in BY_KEY for k in g.attributes)
        groups = [k.split(".")[0] for k in g.attributes]
        assert groups.count("category") == 1 and groups.count("pattern") == 1
        assert set(g.attributes) & CATEGORY_OF[kind]
        assert "colour" in groups
        if kind in ("top", "dress"):
            assert groups.count("sleeve") == 1 and groups.count("neckline") == 1
        if kind in ("dress", "skirt", "trousers"):
            assert groups.count("length") == 1
        if kind in ("shoes", "bag"):
            assert "sleeve" not in groups and "length" not in groups


def test_box_is_tight_and_solid_items_wear_their_labelled_colour() -> None:
    rng = np.random.default_rng(8)
    checked = 0
    while checked < 15:
        g = make_garment(rng, "top", size=(160, 160))
        if "pattern.solid" not in g.attributes:
            continue
        checked += 1
        x0, y0, x1, y1 = g.box
        assert 0 <= x0 < x1 <= 160 and 0 <= y0 < y1 <= 160
        colours = [k.split(".")[1] for k in g.attributes if k.startswith("colour.")]
        assert len(colours) == 1
        # the box's centre column holds the garment's colour (within jitter, shading, noise)
        centre = g.image[(y0 + y1) // 2 + (y1 - y0) // 4, (x0 + x1) // 2].astype(float)
        assert np.abs(centre - np.array(PALETTE[colours[0]])).max() < 45
