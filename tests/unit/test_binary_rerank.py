"""Binary search with a float rerank, as one VectorIndex over the in-memory twins: with enough
oversampling it answers as exact float search does, under the same filters and paging; writes
and deletes reach both collections; a coder of the wrong width is refused."""

from __future__ import annotations

import numpy as np
import pytest

from stores.base import Hit, IndexRow
from stores.binary import MAX_CANDIDATES, BinaryRerankIndex
from stores.codes import Candidate, MemoryCodeIndex
from stores.filters import Effort, Filters
from stores.memory import MemoryVectorIndex
from tests.unit.test_binary_codes import synthetic_embeddings
from training.binary_codes import fit_itq

N, DIM, BITS = 600, 256, 128


def catalogue(gallery: np.ndarray) -> list[IndexRow]:
    kinds = ("dress", "shirt")
    return [
        IndexRow(f"p{i:03d}", version=1, category=kinds[i % 2], price=float(i), embedding=v)
        for i, v in enumerate(gallery)
    ]


def build(oversampling: int) -> tuple[BinaryRerankIndex, MemoryVectorIndex, np.ndarray]:
    vectors = synthetic_embeddings(N + 20, DIM)  # SYNTHETIC
    gallery, queries = vectors[:N], vectors[N:]
    floats = MemoryVectorIndex(dim=DIM)
    index = BinaryRerankIndex(floats, MemoryCodeIndex(BITS), fit_itq(gallery, BITS), oversampling)
    index.upsert(catalogue(gallery))
    exact = MemoryVectorIndex(dim=DIM)
    exact.upsert(catalogue(gallery))
    return index, exact, queries


def ids(rows: list[list[Hit]]) -> list[list[str]]:
    return [[h.product_id for h in row] for row in rows]


def test_with_enough_oversampling_it_answers_as_exact_float_search() -> None:
    index, exact, queries = build(oversampling=16)
    got = index.search(queries, 10)
    want = exact.search(queries, 10)
    assert (
        np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids(got), ids(want), strict=True)])
        >= 0.95
    )
    # scores are the exact cosines, best first, and rows carry no vector
    for row in got:
        scores = [h.score for h in row]
        assert scores == sorted(scores, reverse=True)
        assert all(h.row.embedding is None for h in row)
    hit = got[0][0]
    stored = exact.get([hit.product_id], with_vectors=True)[hit.product_id].embedding
    assert stored is not None
    q = queries[0] / np.linalg.norm(queries[0])
    assert np.isclose(hit.score, float(stored @ q / np.linalg.norm(stored)), atol=1e-5)


def test_filters_and_paging_hold() -> None:
    index, _, queries = build(oversampling=16)
    dresses = index.search(queries[:5], 5, Filters(category="dress", max_price=300))
    assert all(h.row.category == "dress" and h.row.price <= 300 for row in dresses for h in row)
    first, second = index.search(queries[:1], 5), index.search(queries[:1], 5, offset=5)
    assert not set(ids(first)[0]) & set(ids(second)[0])
    assert [h.product_id for h in index.search(queries[:1], 10)[0]] == ids(first)[0] + ids(second)[
        0
    ]


def test_writes_and_deletes_reach_both_collections() -> None:
    index, _, queries = build(oversampling=4)
    top = index.search(queries[:1], 1)[0][0].product_id
    index.delete([top])
    assert index.codes.count() == index.floats.count() == N - 1
    assert top not in ids(index.search(queries[:1], 10))[0]
    with pytest.raises(ValueError, match="bit"):
        BinaryRerankIndex(index.floats, MemoryCodeIndex(64), index.coder)
    with pytest.raises(ValueError, match="embedding"):
        index.upsert([IndexRow(product_id="x")])


def test_versions_show_a_code_that_disagrees_with_its_float_row() -> None:
    index, _, _ = build(oversampling=4)
    lost = index.floats.get(["p001"], with_vectors=True)["p001"]
    index.codes.delete(["p001"])  # a code write that never happened
    stray = IndexRow("zz", version=3)
    index.codes.upsert([stray], np.zeros((1, BITS // 8), dtype=np.uint8))
    versions = {k: v for page in index.versions(batch=50) for k, v in page.items()}
    assert versions["p001"] == -1 and versions["zz"] == 3 and versions["p002"] == 1
    index.upsert([lost])  # the reconcile's repair: a rewrite reaches both
    index.delete(["zz"])
    assert all(v == 1 for page in index.versions() for v in page.values())


class CountingCodes(MemoryCodeIndex):
    """The memory twin, remembering each search's candidate count and nprobe."""

    def __init__(self, bits: int) -> None:
        super().__init__(bits)
        self.asked: list[tuple[int, int | None]] = []

    def search(
        self,
        codes: np.ndarray,
        limit: int,
        filters: Filters | None = None,
        nprobe: int | None = None,
    ) -> list[list[Candidate]]:
        self.asked.append((limit, nprobe))
        return super().search(codes, limit, filters, nprobe)


def test_a_request_s_effort_overrides_the_configured_one() -> None:
    vectors = synthetic_embeddings(N + 20, DIM)  # SYNTHETIC
    gallery, queries = vectors[:N], vectors[N:]
    codes = CountingCodes(BITS)
    floats = MemoryVectorIndex(dim=DIM)
    index = BinaryRerankIndex(floats, codes, fit_itq(gallery, BITS), 8, max_candidates=500)
    index.upsert(catalogue(gallery))
    exact = MemoryVectorIndex(dim=DIM)
    exact.upsert(catalogue(gallery))
    index.search(queries, 10, offset=5)
    index.search(queries, 10, effort=Effort(nprobe=7))
    low = index.search(queries, 10, effort=Effort(oversampling=1))
    high = index.search(queries, 10, effort=Effort(oversampling=32, nprobe=3))
    index.search(queries, 100, effort=Effort(oversampling=64))
    index.search(queries, 600, effort=Effort(oversampling=2))  # never fewer than asked for
    assert codes.asked == [(120, None), (80, 7), (10, None), (320, 3), (500, None), (600, None)]
    want = exact.search(queries, 10)

    def overlap(got: list[list[Hit]]) -> float:
        pairs = zip(ids(got), ids(want), strict=True)
        return float(np.mean([len(set(a) & set(b)) / 10 for a, b in pairs]))

    assert overlap(high) > overlap(low)  # the candidates' count is what buys recall


def test_the_candidate_ceiling_is_checked() -> None:
    floats = MemoryVectorIndex(dim=DIM)
    coder = fit_itq(synthetic_embeddings(200, DIM), BITS)  # SYNTHETIC
    with pytest.raises(ValueError, match="max_candidates"):
        BinaryRerankIndex(floats, MemoryCodeIndex(BITS), coder, max_candidates=MAX_CANDIDATES + 1)
