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
from typing import Generic, Protocol, TypeVar

from processors.colour import PALETTE_NAMES

# Group weights for the attribute overlap: the category says most about what a shopper wants;
# the department only repeats the category.
GROUP_WEIGHTS: Mapping[str, float] = {"category": 2.0, "department": 0.0}


@dataclass(frozen=True)
class Weights:
    visual: float = 0.8
    colour: float = 0.1
    attributes: float = 0.1


VISUAL_ONLY = Weights(1.0, 0.0, 0.0)  # the first stage's order: what the embedding alone ranks


class Candidate(Protocol):
    """A first-stage result: its visual score and the stored features the rerank compares."""

    @property
    def product_id(self) -> str: ...

    @property
    def score(self) -> float: ...

    @property
    def colour_fractions(self) -> Mapping[str, float]: ...

    @property
    def attribute_scores(self) -> Mapping[str, float]: ...


C = TypeVar("C", bound=Candidate)


@dataclass(frozen=True)
class Ranked(Generic[C]):
    item: C  # the candidate as the first stage returned it
    score: float
    visual: float
    colour: float
    attributes: float

    @property
    def product_id(self) -> str:
        return self.item.product_id


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
    candidates: Sequence[C],
    query_colours: Mapping[str, float],
    weights: Weights,
    query_attributes: Mapping[str, float] | None = None,
) -> list[Ranked[C]]:
    ranked = []
    for c in candidates:
        colour = colour_similarity(query_colours, c.colour_fractions)
        attrs = attribute_similarity(query_attributes or {}, c.attribute_scores)
        score = weights.visual * c.score + weights.colour * colour + weights.attributes * attrs
        ranked.append(Ranked(c, score, c.score, colour, attrs))
    ranked.sort(key=lambda r: (-r.score, r.product_id))
    return ranked
