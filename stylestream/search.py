"""Visual search over the index, by image or by product id, in two stages: approximate top-N
from Milvus, then a rerank on the full features (processors/ranking.py). Shared by the CLI,
the demo and the API."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from processors.products import ProductProcessor
from processors.ranking import Ranked, Weights, rerank
from stores.base import Hit, VectorIndex
from stores.milvus import quote

MAX_CANDIDATES = 1000


class UnknownProduct(LookupError):
    pass


@dataclass(frozen=True)
class Filters:
    category: str | None = None
    colour: str | None = None
    min_price: float | None = None
    max_price: float | None = None
    version: int | None = None

    def expression(self) -> str:
        """A Milvus boolean expression; every value is quoted or a number, never spliced raw."""
        parts = []
        if self.category is not None:
            parts.append(f"category == {quote(self.category)}")
        if self.colour is not None:
            parts.append(f"primary_colour == {quote(self.colour)}")
        if self.min_price is not None:
            parts.append(f"price >= {float(self.min_price)!r}")
        if self.max_price is not None:
            parts.append(f"price <= {float(self.max_price)!r}")
        if self.version is not None:
            parts.append(f"version == {int(self.version)}")
        return " and ".join(parts)


def _candidates(hits: Sequence[Hit]) -> list[tuple[str, float, dict[str, object]]]:
    return [(h.product_id, h.score, dict(h.fields)) for h in hits]


class SearchService:
    def __init__(
        self,
        processor: ProductProcessor,
        index: VectorIndex,
        weights: Weights | None = None,
        candidates: int = 100,
    ) -> None:
        self.processor = processor
        self.index = index
        self.weights = weights or Weights()
        self.candidates = candidates

    def _pool(self, k: int, offset: int) -> int:
        return min(MAX_CANDIDATES, max(self.candidates, k + offset))

    def by_images(
        self,
        images: Sequence[np.ndarray],
        k: int = 10,
        filters: Filters | None = None,
        offset: int = 0,
    ) -> list[list[Ranked]]:
        """Batched: one Milvus call for all queries (far cheaper than one call each)."""
        return [
            rerank(hits, colours, self.weights)[offset : offset + k]
            for hits, colours in self.stage_one(images, self._pool(k, offset), filters)
        ]

    def stage_one(
        self, images: Sequence[np.ndarray], pool: int, filters: Filters | None = None
    ) -> list[tuple[list[tuple[str, float, dict[str, object]]], dict[str, float]]]:
        """Stage one for each image: Milvus's top ``pool`` and the query's colour shares, ready
        for ``rerank`` (callers comparing weightings rerank these without searching again)."""
        vectors, colours = self.processor.describe_queries(images)
        hits = self.index.search(vectors, pool, (filters or Filters()).expression())
        return [(_candidates(h), c) for h, c in zip(hits, colours, strict=True)]

    def by_product(
        self, product_id: str, k: int = 10, filters: Filters | None = None, offset: int = 0
    ) -> list[Ranked]:
        row = self.index.get([product_id], with_vectors=True).get(product_id)
        if row is None:
            raise UnknownProduct(f"product {product_id!r} is not in the index")
        vector = np.asarray([row["embedding"]], dtype=np.float32)
        pool = self._pool(k, offset) + 1
        hits = self.index.search(vector, pool, (filters or Filters()).expression())[0]
        others = [h for h in hits if h.product_id != product_id]
        colours = (row.get("colour") or {}).get("fractions", {})
        return rerank(_candidates(others), colours, self.weights)[offset : offset + k]
