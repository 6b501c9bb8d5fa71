"""Second-stage ranking: Milvus returns approximate top-N by visual similarity; this reorders
them on the full features.

    score = w_visual * visual + w_colour * colour + w_attributes * attributes

- visual: cosine similarity of the L2-normalised embeddings (what Milvus returned), in [-1, 1];
- colour: histogram intersection of the palette shares inside each item's region,
  sum_i min(p_i, q_i), in [0, 1] (1 = the same colours in the same proportions);
- attributes: weighted overlap of predicted attributes,
  sum_a g(a) * min(q_a, c_a) / sum_a g(a) * q_a over the query's attributes a, with q_a and
  c_a the query's and the candidate's confidences and g the attribute's group weight; in
  [0, 1] (1 = the candidate has every attribute of the query, at least as surely).
The weights are settings: shape leads, colour and attributes refine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from processors.colour import PALETTE_NAMES

# Group weights for the attribute overlap: the category says most about what a shopper wants;
# the department only repeats the category.
GROUP_WEIGHTS: Mapping[str, float] = {"category": 2.0, "department": 0.0}


@dataclass(frozen=True)
class Weights:
    visual: float = 0.8
    colour: float = 0.1
    attributes: float = 0.1


@dataclass(frozen=True)
class Ranked:
    product_id: str
    score: float
    visual: float
    colour: float
    attributes: float
    fields: Mapping[str, Any]


def colour_similarity(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    return float(sum(min(a.get(n, 0.0), b.get(n, 0.0)) for n in PALETTE_NAMES))


def attribute_similarity(query: Mapping[str, float], candidate: Mapping[str, float]) -> float:
    total = shared = 0.0
    for key, q in query.items():
        g = GROUP_WEIGHTS.get(key.split(".", 1)[0], 1.0)
        total += g * q
        shared += g * min(q, candidate.get(key, 0.0))
    return shared / total if total > 0 else 0.0


def rerank(
    candidates: Sequence[tuple[str, float, Mapping[str, Any]]],
    query_colours: Mapping[str, float],
    weights: Weights,
    query_attributes: Mapping[str, float] | None = None,
) -> list[Ranked]:
    """``candidates``: (product id, visual score, stored fields with ``colour.fractions`` and
    ``attribute_scores``)."""
    ranked = []
    for pid, visual, fields in candidates:
        colour = colour_similarity(query_colours, (fields.get("colour") or {}).get("fractions", {}))
        attrs = attribute_similarity(query_attributes or {}, fields.get("attribute_scores") or {})
        score = weights.visual * visual + weights.colour * colour + weights.attributes * attrs
        ranked.append(Ranked(pid, score, visual, colour, attrs, fields))
    ranked.sort(key=lambda r: (-r.score, r.product_id))
    return ranked
