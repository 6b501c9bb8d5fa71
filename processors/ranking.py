"""Second-stage ranking: Milvus returns approximate top-N by visual similarity; this reorders
them on the full features.

    score = w_visual * visual + w_colour * colour

- visual: cosine similarity of the L2-normalised embeddings (what Milvus returned), in [-1, 1];
- colour: histogram intersection of the palette shares inside each item's region,
  sum_i min(p_i, q_i), in [0, 1] (1 = the same colours in the same proportions).
The weights are settings (default 0.9 / 0.1): colour refines, it does not override shape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from processors.colour import PALETTE_NAMES


@dataclass(frozen=True)
class Weights:
    visual: float = 0.9
    colour: float = 0.1


@dataclass(frozen=True)
class Ranked:
    product_id: str
    score: float
    visual: float
    colour: float
    fields: Mapping[str, Any]


def colour_similarity(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    return float(sum(min(a.get(n, 0.0), b.get(n, 0.0)) for n in PALETTE_NAMES))


def rerank(
    candidates: Sequence[tuple[str, float, Mapping[str, Any]]],
    query_colours: Mapping[str, float],
    weights: Weights,
) -> list[Ranked]:
    """``candidates``: (product id, visual score, stored fields with ``colour.fractions``)."""
    ranked = []
    for pid, visual, fields in candidates:
        colour = colour_similarity(query_colours, (fields.get("colour") or {}).get("fractions", {}))
        score = weights.visual * visual + weights.colour * colour
        ranked.append(Ranked(pid, score, visual, colour, fields))
    ranked.sort(key=lambda r: (-r.score, r.product_id))
    return ranked
