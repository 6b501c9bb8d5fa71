"""Visual search over the index, by image or by product id, in two stages: approximate top-N
from the vector index under the filters, then a rerank on the full features
(processors/ranking.py). The one read path of the API, the CLI, the demo and the benches."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from processors.products import Embedder, ProductProcessor
from processors.ranking import Ranked, Weights, rerank
from search.targets import search_target
from stores.base import Hit, IndexTargets, Target
from stores.filters import Effort, Filters

MAX_CANDIDATES = 1000


class UnknownProduct(LookupError):
    pass


class IncompatibleQueryModel(RuntimeError):
    """The query model's embeddings live in another space than the serving collection's:
    searching would rank at chance, so image searches are refused instead."""


@dataclass(frozen=True)
class QueryEncoder:
    """A compact query model and the gallery model whose collections it can search."""

    embedder: Embedder
    gallery_model_version: str

    @property
    def model_version(self) -> str:
        return self.embedder.model_version

    def check(self, target: Target) -> None:
        if target.model_version != self.gallery_model_version:
            where = target.collection or "the serving collection"
            raise IncompatibleQueryModel(
                f"query model {self.model_version} searches galleries of "
                f"{self.gallery_model_version}, but {where} holds {target.model_version}: "
                "serve a compatible query model (STYLESTREAM_QUERY_MODEL) or none"
            )


@dataclass(frozen=True)
class ImageQuery:
    """One image search: the decoded image and its page, filters and effort."""

    image: np.ndarray = field(compare=False)
    k: int = 10
    filters: Filters | None = None
    offset: int = 0
    effort: Effort | None = None


@dataclass(frozen=True)
class StageOne:
    """One image query's first stage, ready for ``rerank`` at any weights."""

    candidates: list[Hit]
    colours: dict[str, float]
    attributes: dict[str, float]
    # the query's embedding: the base model's (impressions carry it, heads train on it), or
    # a compact query model's when one serves (impressions then carry none)
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
        query_encoder: QueryEncoder | None = None,
    ) -> None:
        """``query_encoder``: image queries embedded by a compact model compatible with the
        serving collection's (refused against any other), instead of the base model."""
        self.processor = processor
        self.targets = targets
        self.weights = weights or Weights()
        self.candidates = candidates
        self.query_encoder = query_encoder

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
        """Batched: one model call and one index call for all queries."""
        return self.by_queries([ImageQuery(rgb, k, filters, offset, effort) for rgb in images])

    def by_queries(self, queries: Sequence[ImageQuery]) -> list[Result]:
        """Queries of any pages and filters at once (concurrent requests, search/batching.py):
        each model runs once over all images, the index once per distinct (pool, filters,
        effort)."""
        pools = [self.pool(q.k, q.offset) for q in queries]
        stages = self._stages(queries, pools)
        return [
            Result(self.rank(stage, q.k, q.offset), stage.model_version, stage.vector)
            for q, stage in zip(queries, stages, strict=True)
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
        queries = [ImageQuery(rgb, pool, filters, 0, effort) for rgb in images]
        return self._stages(queries, [pool] * len(queries))

    def _stages(self, queries: Sequence[ImageQuery], pools: Sequence[int]) -> list[StageOne]:
        if not queries:
            return []
        target = self.targets.serving()
        compact = self.query_encoder
        if compact is not None:
            compact.check(target)
        encoder = compact.embedder if compact else None
        images = [q.image for q in queries]
        vectors, colours, attributes = self.processor.describe_queries(images, encoder)
        groups: dict[tuple[int, Filters | None, Effort | None], list[int]] = {}
        for i, (q, pool) in enumerate(zip(queries, pools, strict=True)):
            groups.setdefault((pool, q.filters, q.effort), []).append(i)
        hits: list[list[Hit]] = [[] for _ in queries]
        for (pool, filters, effort), rows in groups.items():
            # a compact query model embeds straight into the collection's space
            found = search_target(
                target, vectors[rows], pool, filters, projected=compact is not None, effort=effort
            )
            for row, row_hits in zip(rows, found, strict=True):
                hits[row] = row_hits
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
