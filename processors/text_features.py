"""What the product tower of a text model sees of a product besides its words: attribute
confidences in taxonomy order, colour shares in palette order, the base image embedding. One
layout, shared by training, the worker and the re-index."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from processors.colour import PALETTE_NAMES
from schemas.attributes import TAXONOMY_V1

ATTRIBUTE_KEYS = tuple(a.key for a in TAXONOMY_V1)
_SLOT = {k: i for i, k in enumerate(ATTRIBUTE_KEYS)}


def dense_width(base_dim: int) -> int:
    return len(ATTRIBUTE_KEYS) + len(PALETTE_NAMES) + base_dim


def product_features(
    attribute_scores: Mapping[str, float], colour_fractions: Mapping[str, float], base: np.ndarray
) -> np.ndarray:
    attributes = np.zeros(len(ATTRIBUTE_KEYS), dtype=np.float32)
    for key, score in attribute_scores.items():
        if key in _SLOT:
            attributes[_SLOT[key]] = score
    colours = np.array([colour_fractions.get(n, 0.0) for n in PALETTE_NAMES], dtype=np.float32)
    return np.concatenate([attributes, colours, np.asarray(base, dtype=np.float32)])
