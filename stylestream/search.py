"""Visual search over the index, by image or by product id, in two stages: approximate top-N
from Milvus, then a rerank on the full features (processors/ranking.py). Shared by the CLI,
the demo and the API."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from processors.products import ProductProcessor
from processors.ranking import Ranked, Weights, rerank
from stores.base import Hit, IndexTargets
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
    vector: np.ndarray  # the query's base embedding (impressions carry it; heads train on it)
    model_version: str  # the model of the collection searched


def _candidates(hits: Sequence[Hit]) -> list[tuple[str, float, dict[str, object]]]:
    return [(h.product_id, h.score, dict(h.fields)) for h in hits]


class IndexNeighbours:
    """The category vote's neighbours, from the index: the worker's half of model + search
    fusion (processors/tagger.py)."""

    def __init__(self, targets: IndexTargets) -> None:
        self.targets = targets

    def neighbours(
        self, vectors: np.ndarray, k: int, own_ids: Sequence[str]
    ) -> list[list[tuple[str, float]]]:
        out = []
        target = self.targets.serving()
        found_hits = target.search(vectors, k + 1, fields=["category"])
        for own, hits in zip(own_ids, found_hits, strict=True):
            found = [(str(h.fields.get("category", "")), h.score) for h in hits]
            out.append([f for f, h in zip(found, hits, strict=True) if h.product_id != own][:k])
        return out


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
    ) -> list[tuple[list[Ranked], StageOne]]:
        """``by_images`` plus each query's stage one (impressions carry its base embedding
        and the model version searched)."""
        return [
            (
                rerank(stage.candidates, stage.colours, self.weights, stage.attributes)[
                    offset : offset + k
                ],
                stage,
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
        target = self.targets.serving()
        expr = (filters or Filters()).expression()
        hits = target.search(vectors, pool, expr)
        return [
            StageOne(_candidates(h), c, a, v, target.model_version)
            for h, c, a, v in zip(hits, colours, attributes, vectors, strict=True)
        ]

    def by_product(
        self, product_id: str, k: int = 10, filters: Filters | None = None, offset: int = 0
    ) -> list[Ranked]:
        return self.rank_product(product_id, k, filters, offset)[0]

    def rank_product(
        self, product_id: str, k: int = 10, filters: Filters | None = None, offset: int = 0
    ) -> tuple[list[Ranked], str]:
        """``by_product`` plus the model version of the collection searched."""
        target = self.targets.serving()
        row = target.index.get([product_id], with_vectors=True).get(product_id)
        if row is None:
            raise UnknownProduct(f"product {product_id!r} is not in the index")
        vector = np.asarray([row["embedding"]], dtype=np.float32)
        pool = self._pool(k, offset) + 1
        hits = target.search(vector, pool, (filters or Filters()).expression(), projected=True)[0]
        others = [h for h in hits if h.product_id != product_id]
        colours = (row.get("colour") or {}).get("fractions", {})
        attributes = row.get("attribute_scores") or {}
        ranked = rerank(_candidates(others), colours, self.weights, attributes)
        return ranked[offset : offset + k], target.model_version
