"""The read path with no service: the search service and the neighbour vote over the
in-memory index, with the base model and with a calibrated head."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from processors.products import ProductProcessor, RawEvent
from schemas.events import encode_event
from search import (
    Filters,
    ImageQuery,
    IncompatibleQueryModel,
    IndexNeighbours,
    QueryEncoder,
    SearchService,
    UnknownProduct,
)
from stores.base import FixedTarget, Hit, IndexTargets, Target
from stores.memory import MemoryRepository, MemoryVectorIndex
from stores.writer import ProductWriter
from tests.events import photo, upsert
from training.datasets import to_rgb

N = 24


@pytest.fixture(scope="module")
def catalogue(processor: ProductProcessor) -> MemoryVectorIndex:
    index = MemoryVectorIndex()
    events = [upsert(f"p{i:02d}", 1, i) for i in range(N)]
    ProductWriter(FixedTarget(index), MemoryRepository()).write(
        processor.process([RawEvent(encode_event(e)) for e in events])
    )
    return index


def test_an_indexed_photo_finds_itself_first(
    processor: ProductProcessor, catalogue: MemoryVectorIndex
) -> None:
    service = SearchService(processor, FixedTarget(catalogue, "base-v"))
    results = service.by_images([to_rgb(photo(i)[0]) for i in range(3)], k=5)
    for i, result in enumerate(results):
        assert result.ranked[0].product_id == f"p{i:02d}"
        assert result.ranked[0].visual == pytest.approx(1.0, abs=1e-3)
        assert result.model_version == "base-v" and result.vector is not None
        scores = [r.score for r in result.ranked]
        assert scores == sorted(scores, reverse=True) and len(scores) == 5


def test_filters_paging_and_more_like_this(
    processor: ProductProcessor, catalogue: MemoryVectorIndex
) -> None:
    service = SearchService(processor, FixedTarget(catalogue))
    category = photo(0)[1]
    filtered = service.by_images([to_rgb(photo(0)[0])], k=N, filters=Filters(category=category))
    assert {r.item.row.category for r in filtered[0].ranked} == {category}
    everything = service.by_images([to_rgb(photo(0)[0])], k=10)[0].ranked
    page2 = service.by_images([to_rgb(photo(0)[0])], k=5, offset=5)[0].ranked
    assert [r.product_id for r in page2] == [r.product_id for r in everything[5:]]
    similar = service.by_product("p03", k=5)
    assert len(similar.ranked) == 5 and "p03" not in {r.product_id for r in similar.ranked}
    with pytest.raises(UnknownProduct):
        service.by_product("nope")


class CountingIndex(MemoryVectorIndex):
    def __init__(self, inner: MemoryVectorIndex) -> None:
        self.inner = inner
        self.calls: list[int] = []

    def search(self, vectors: np.ndarray, *args: object, **kwargs: object) -> list[list[Hit]]:
        self.calls.append(len(vectors))
        return self.inner.search(vectors, *args, **kwargs)  # type: ignore[arg-type]


def test_queries_of_other_pages_and_filters_batch_into_one_call_per_search_shape(
    processor: ProductProcessor, catalogue: MemoryVectorIndex
) -> None:
    counting = CountingIndex(catalogue)
    service = SearchService(processor, FixedTarget(counting))
    shirt, other = to_rgb(photo(0)[0]), to_rgb(photo(1)[0])
    category = Filters(category=photo(1)[1])
    queries = [
        ImageQuery(shirt, k=5),
        ImageQuery(shirt, k=5, offset=5),
        ImageQuery(other, k=3, filters=category),
        ImageQuery(other, k=4),
    ]
    batched = service.by_queries(queries)
    assert counting.calls == [3, 1]  # one index call per (pool, filters, effort)
    alone = [service.by_images([q.image], q.k, q.filters, q.offset)[0] for q in queries]
    for got, want in zip(batched, alone, strict=True):
        assert [r.product_id for r in got.ranked] == [r.product_id for r in want.ranked]
        assert np.allclose(got.vector, want.vector, atol=1e-5)  # type: ignore[arg-type]
    assert [len(r.ranked) for r in batched] == [5, 5, 3, 4]
    assert {r.item.row.category for r in batched[2].ranked} == {photo(1)[1]}


@dataclass(frozen=True)
class ScaledHead:
    """A head that keeps the space but reports scores through a calibration."""

    shift: float = 0.5
    scale: float = 0.25
    model_version: str = "head-v"
    dim: int = 1280

    def project(self, base: np.ndarray) -> np.ndarray:
        return np.asarray(base, dtype=np.float32)

    def score(self, cosine: float) -> float:
        return self.shift + self.scale * cosine


@dataclass(frozen=True)
class HeadTarget:
    index: MemoryVectorIndex

    def serving(self) -> Target:
        return Target(self.index, "head-v", ScaledHead(), "c")

    def writes(self) -> list[Target]:
        return [self.serving()]

    def close(self) -> None:
        """Nothing to close."""


def test_a_heads_scores_reach_the_rerank_calibrated(
    processor: ProductProcessor, catalogue: MemoryVectorIndex
) -> None:
    targets: IndexTargets = HeadTarget(catalogue)
    service = SearchService(processor, targets)
    result = service.by_images([to_rgb(photo(1)[0])], k=3)[0]
    assert result.model_version == "head-v"
    assert result.ranked[0].visual == pytest.approx(0.5 + 0.25 * 1.0, abs=1e-3)
    neighbours = IndexNeighbours(targets).neighbours(
        np.asarray([catalogue.get(["p01"], with_vectors=True)["p01"].embedding]), 4, ["p01"]
    )[0]
    assert len(neighbours) == 4 and all(score <= 0.75 + 1e-6 for _, score in neighbours)
    assert all(category for category, _ in neighbours)


def test_a_query_encoder_searches_its_gallery_and_refuses_another(
    processor: ProductProcessor, catalogue: MemoryVectorIndex
) -> None:
    """The base embedder stands in for a compatible compact model (it is compatible with its
    own gallery): queries go through it, unprojected, and carry no predicted attributes."""
    encoder = QueryEncoder(processor.embedder, "base-v")
    service = SearchService(processor, FixedTarget(catalogue, "base-v"), query_encoder=encoder)
    result = service.by_images([to_rgb(photo(2)[0])], k=3)[0]
    assert result.ranked[0].product_id == "p02"
    assert all(r.attributes == 0 for r in result.ranked)  # no predicted query attributes
    other = SearchService(processor, FixedTarget(catalogue, "head-v"), query_encoder=encoder)
    with pytest.raises(IncompatibleQueryModel, match=r"base-v.*head-v"):
        other.by_images([to_rgb(photo(2)[0])], k=3)
    assert other.by_product("p03", k=3).ranked  # stored vectors: no query model involved
