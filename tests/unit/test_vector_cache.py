"""The binary rerank's vector cache: keyed by (id, version) so a newer version is a miss, never
a stale hit; bounded by bytes, least recently used out first; and a binary index with the cache
answers as one without, reading a candidate from the float collection only once."""

from __future__ import annotations

import numpy as np
import pytest

from stores.base import IndexRow
from stores.binary import BinaryRerankIndex
from stores.codes import MemoryCodeIndex
from stores.memory import MemoryVectorIndex
from stores.vector_cache import ROW_BYTES, VectorCache
from tests.unit.test_binary_codes import synthetic_embeddings
from tests.unit.test_binary_rerank import catalogue, ids
from training.binary_codes import fit_itq

DIM = 64


def row(pid: str, version: int = 1, seed: int = 0) -> IndexRow:
    vector = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
    return IndexRow(pid, version=version, category="dress", embedding=vector)


def test_entries_are_keyed_by_version_and_kept_as_float16_without_the_row_vector() -> None:
    cache = VectorCache(10**6)
    original = row("a", 1)
    stored, vector = cache.put(original)
    assert stored.embedding is None and vector.dtype == np.float16
    assert np.allclose(vector, np.asarray(original.embedding), atol=1e-2)
    assert set(cache.get_many([("a", 1), ("a", 2), ("b", 1)])) == {("a", 1)}
    assert (cache.hits, cache.misses) == (1, 2)


def test_the_least_recently_used_go_when_the_budget_is_spent() -> None:
    per_entry = DIM * 2 + ROW_BYTES
    cache = VectorCache(3 * per_entry)
    for pid in "abc":
        cache.put(row(pid))
    cache.get_many([("a", 1)])  # a is now the most recent
    cache.put(row("d"))
    assert set(cache.get_many([(p, 1) for p in "abcd"])) == {("a", 1), ("c", 1), ("d", 1)}
    assert cache.bytes == 3 * per_entry and len(cache) == 3
    cache.put(row("d"))  # the same key again replaces, not adds
    assert cache.bytes == 3 * per_entry


def test_a_row_without_a_vector_is_refused() -> None:
    with pytest.raises(ValueError):
        VectorCache(10**6).put(IndexRow("a", version=1, category="dress"))


class CountingFloats(MemoryVectorIndex):
    def __init__(self, dim: int) -> None:
        super().__init__(dim=dim)
        self.read: list[str] = []

    def get(self, product_ids, with_vectors=False):  # type: ignore[no-untyped-def]
        self.read.extend(product_ids)
        return super().get(product_ids, with_vectors)


def test_a_cached_index_answers_as_an_uncached_one_and_reads_each_version_once() -> None:
    vectors = synthetic_embeddings(320, 128)  # SYNTHETIC
    gallery, queries = vectors[:300], vectors[300:]
    coder = fit_itq(gallery, 64)
    plain = BinaryRerankIndex(MemoryVectorIndex(dim=128), MemoryCodeIndex(64), coder, 8)
    floats = CountingFloats(128)
    cached = BinaryRerankIndex(floats, MemoryCodeIndex(64), coder, 8, cache=VectorCache(10**8))
    for index in (plain, cached):
        index.upsert(catalogue(gallery))
    first = cached.search(queries, 10)
    assert ids(first) == ids(plain.search(queries, 10))
    want = [h.score for h in plain.search(queries, 10)[0]]
    assert [h.score for h in first[0]] == pytest.approx(want, abs=2e-3)  # float16
    read = len(floats.read)
    assert read == len(set(floats.read)) > 0  # each candidate read once in the batch
    assert ids(cached.search(queries, 10)) == ids(first) and len(floats.read) == read
    # a new version of a top hit is a miss: read again, never served from the old entry
    top = first[0][0]
    vector = gallery[int(top.product_id[1:])]
    cached.upsert([IndexRow(top.product_id, version=2, category="coat", embedding=vector)])
    (again,) = cached.search(queries[:1], 10)
    assert floats.read[read:] == [top.product_id]
    assert (again[0].product_id, again[0].row.version, again[0].row.category) == (
        top.product_id,
        2,
        "coat",
    )


def test_rows_come_back_whole_and_cached_entries_are_not_walked_by_the_collector() -> None:
    import gc

    original = IndexRow(
        "a",
        version=3,
        category="dress",
        price=9.5,
        primary_colour="red",
        colour_fractions={"red": 0.7, "blue": 0.3},
        colour_vector=(0.1, 0.2),
        attributes=("sleeve.long",),
        attribute_scores={"sleeve.long": 0.9},
        embedding=np.ones(DIM, dtype=np.float32),
    )
    cache = VectorCache(10**6)
    cache.put(original)
    ((row, vector),) = cache.get_many([("a", 3)]).values()
    assert row == original and row.embedding is None and vector.shape == (DIM,)
    for _ in range(2):  # the inner tuples are untracked in one pass, the outer in the next
        gc.collect()
    assert not any(gc.is_tracked(entry) for entry in cache._slots.values())
