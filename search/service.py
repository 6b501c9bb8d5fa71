"""Visual search over the index, by image or by product id, in two stages: approximate top-N
from the vector index under the filters, then a rerank on the full features
(processors/ranking.py). The one read path of the API, the CLI, the demo and the benches."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from processors.products import ProductProcessor
from processors.ranking import Ranked, Weights, rerank
from search.targets import search_target
from stores.base import Hit, IndexTargets
from stores.filters import Effort, Filters

MAX_CANDIDATES = 1000


class UnknownProduct(LookupError):
    pass


@dataclass(frozen=True)
class StageOne:
    """One image query's first stage, ready for ``rerank`` at any weights."""

    candidates: list[Hit]
    colours: dict[str, float]
    attributes: dict[str, float]
    # the query's base embedding (impressions carry it; heads train on it)
    vector: np.ndarray = field(compare=False)
    model_version: str  # the model of the collection searched


@dataclass(frozen=True)
class Result:
    """One query's ranked page and the model version of the collection that answered."""

    ranked: list[Ranked[Hit]]
    model_version: str
    vector: np.ndarray | None = field(default=None, compare=False)  # an image query's base one


class SearchService:
    def __init__(
        self,
        processor: ProductProcessor,
        targets: IndexTargets,
        weights: Weights | None = None,
        candidates: int = 100,
    ) -> None:
        self.processor = processor
        self.targets = targets
        self.weights = weights or Weights()
        self.candidates = candidates

    def pool(self, k: int, offset: int) -> int:
        return min(MAX_CANDIDATES, max(self.candidates, k + offset))

    def by_images(
        self,
        images: Sequence[np.ndarray],
        k: int = 10,
        filters: Filters | None = None,
        offset: int = 0,
        effort: Effort | None = None,
    ) -> list[Result]:
        """Batched: one index call for all queries (far cheaper than one call each)."""
        return [
            Result(self.rank(stage, k, offset), stage.model_version, stage.vector)
            for stage in self.stage_one(images, self.pool(k, offset), filters, effort)
        ]

    def rank(
        self, stage: StageOne, k: int = 10, offset: int = 0, weights: Weights | None = None
    ) -> list[Ranked[Hit]]:
        """The second stage: rerank a first stage (at the served weights unless given)."""
        ranked = rerank(stage.candidates, stage.colours, weights or self.weights, stage.attributes)
        return ranked[offset : offset + k]

    def stage_one(
        self,
        images: Sequence[np.ndarray],
        pool: int,
        filters: Filters | None = None,
        effort: Effort | None = None,
    ) -> list[StageOne]:
        """Each image's top ``pool`` from the index and its colour shares and attributes
        (callers comparing weightings rerank these without searching again)."""
        vectors, colours, attributes = self.processor.describe_queries(images)
        target = self.targets.serving()
        hits = search_target(target, vectors, pool, filters, effort=effort)
        return [
            StageOne(h, c, a, v, target.model_version)
            for h, c, a, v in zip(hits, colours, attributes, vectors, strict=True)
        ]

    def by_product(
        self,
        product_id: str,
        k: int = 10,
        filters: Filters | None = None,
        offset: int = 0,
        effort: Effort | None = None,
    ) -> Result:
        """More like an indexed product: its stored vector and features are the query."""
        target = self.targets.serving()
        row = target.index.get([product_id], with_vectors=True).get(product_id)
        if row is None or row.embedding is None:
            raise UnknownProduct(f"product {product_id!r} is not in the index")
        vector = np.asarray([row.embedding], dtype=np.float32)
        pool = self.pool(k, offset) + 1
        hits = search_target(target, vector, pool, filters, projected=True, effort=effort)[0]
        others = [h for h in hits if h.product_id != product_id]
        ranked = rerank(others, row.colour_fractions, self.weights, row.attribute_scores)
        return Result(ranked[offset : offset + k], target.model_version)
