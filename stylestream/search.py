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
    attributes: tuple[str, ...] = ()  # taxonomy keys: any of them within a group, all groups

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
        by_group: dict[str, list[str]] = {}
        for key in dict.fromkeys(self.attributes):
            by_group.setdefault(key.split(".", 1)[0], []).append(key)
        for keys in by_group.values():
            parts.append(f"array_contains_any(attributes, [{', '.join(quote(k) for k in keys)}])")
        return " and ".join(parts)


@dataclass(frozen=True)
class StageOne:
    candidates: list[tuple[str, float, dict[str, object]]]
    colours: dict[str, float]
    attributes: dict[str, float]
    vector: np.ndarray  # the query's embedding


def _candidates(hits: Sequence[Hit]) -> list[tuple[str, float, dict[str, object]]]:
    return [(h.product_id, h.score, dict(h.fields)) for h in hits]


class IndexNeighbours:
    """The category vote's neighbours, from the index: the worker's half of model + search
    fusion (processors/tagger.py)."""

    def __init__(self, index: VectorIndex) -> None:
        self.index = index

    def neighbours(
        self, vectors: np.ndarray, k: int, own_ids: Sequence[str]
    ) -> list[list[tuple[str, float]]]:
        out = []
        found_hits = self.index.search(vectors, k + 1, fields=["category"])
        for own, hits in zip(own_ids, found_hits, strict=True):
            found = [(str(h.fields.get("category", "")), h.score) for h in hits]
            out.append([f for f, h in zip(found, hits, strict=True) if h.product_id != own][:k])
        return out


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
        return [ranked for ranked, _ in self.rank_images(images, k, filters, offset)]

    def rank_images(
        self,
        images: Sequence[np.ndarray],
        k: int = 10,
        filters: Filters | None = None,
        offset: int = 0,
    ) -> list[tuple[list[Ranked], np.ndarray]]:
        """``by_images`` plus each query's embedding (search impressions carry it)."""
        return [
            (
                rerank(stage.candidates, stage.colours, self.weights, stage.attributes)[
                    offset : offset + k
                ],
                stage.vector,
            )
            for stage in self.stage_one(images, self._pool(k, offset), filters)
        ]

    def stage_one(
        self, images: Sequence[np.ndarray], pool: int, filters: Filters | None = None
    ) -> list[StageOne]:
        """Stage one for each image: Milvus's top ``pool`` and the query's colour shares and
        attributes, ready for ``rerank`` (callers comparing weightings rerank these without
        searching again)."""
        vectors, colours, attributes = self.processor.describe_queries(images)
        hits = self.index.search(vectors, pool, (filters or Filters()).expression())
        return [
            StageOne(_candidates(h), c, a, v)
            for h, c, a, v in zip(hits, colours, attributes, vectors, strict=True)
        ]

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
        attributes = row.get("attribute_scores") or {}
        return rerank(_candidates(others), colours, self.weights, attributes)[offset : offset + k]
