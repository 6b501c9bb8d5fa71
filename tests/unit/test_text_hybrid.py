"""Hybrid text search (dense text vectors fused with lexical matching) and the writer's text
collections, on the in-memory twins with a small concept encoder: a word and its synonym share
one direction, so the dense side finds what the words alone cannot."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from processors.products import ProductProcessor, RawEvent
from processors.text import words
from schemas.events import encode_event
from search.text import LEXICAL_MODEL, TextQuery, TextSearch, rrf
from stores.base import FixedTarget
from stores.filters import Filters
from stores.memory import MemoryRepository, MemoryVectorIndex
from stores.reconcile import Reconciler
from stores.rows import encode_base, stored_index_row
from stores.text_serving import FixedTextTarget, TextTarget
from stores.writer import ProductWriter
from tests.events import delete, upsert

CONCEPTS = {
    "red": 0, "crimson": 0, "blue": 1, "azure": 1, "green": 2, "emerald": 2,
    "dress": 3, "frock": 3, "boot": 4, "boots": 4, "heel": 5, "heels": 5,
}  # fmt: skip


class ConceptTowers:
    """A twin of a trained text model: each known word is one axis, synonyms share it."""

    model_version = "text-twin-1"
    dim = 8

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, text in enumerate(texts):
            for w in words(text):
                if w in CONCEPTS:
                    out[i, CONCEPTS[w]] += 1
            out[i, 7] += 0.1  # every text shares a little: no zero vector
        normed: np.ndarray = out / np.linalg.norm(out, axis=1, keepdims=True)
        return normed

    def queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts)

    def products(self, texts: Sequence[str], dense: np.ndarray) -> np.ndarray:
        assert len(dense) == len(texts)  # the tower's dense features travel with the words
        return self._encode(texts)


PRODUCTS = {  # id -> (words, category)
    "p1": ("red dress", "dress"),
    "p2": ("crimson frock", "dress"),  # no word of "red dress", same meaning
    "p3": ("blue dress", "dress"),
    "p4": ("red boots heel", "boot"),
    "p5": ("red boots", "boot"),
    "p6": ("green frock", "dress"),
}


def _row(pid: str, text: str, category: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "product_id": pid, "version": 1, "title": text, "search_text": text,
        "category": category, "price": 10, "currency": "EUR", "image_ref": "x",
        "synthetic_fields": ["title"], "roi_box": [0, 0, 1, 1], "image_width": 1,
        "image_height": 1, "primary_colour": "red", "colour_fractions": {"red": 1.0},
        "colour_vector": [0.0], "model_version": "m", "event_time": now, "indexed_at": now,
        "predicted_category": category,
        "base_embedding": encode_base(np.ones(4)), "attributes": [],
    }  # fmt: skip


@pytest.fixture
def search() -> TextSearch:
    repo = MemoryRepository()
    rows = [_row(p, t, c) for p, (t, c) in PRODUCTS.items()]
    repo.apply(rows, [])
    images, texts = MemoryVectorIndex(dim=4), MemoryVectorIndex(dim=8)
    images.upsert([stored_index_row(r, [], np.ones(4), "m") for r in rows])
    target = TextTarget(texts, ConceptTowers(), "text_c")
    vectors = target.vectors(rows)
    texts.upsert(
        [stored_index_row(r, [], v, "text-twin-1") for r, v in zip(rows, vectors, strict=True)]
    )
    return TextSearch(repo, FixedTarget(images), FixedTextTarget(target))


def _ids(search: TextSearch, query: str | dict[str, float], **kw: Any) -> list[str]:
    return [h.product_id for h in search.search(TextQuery.parse(query, **kw)).hits]


def test_rrf_adds_reciprocal_ranks_and_breaks_ties_by_id() -> None:
    fused = rrf([["a", "b"], ["b", "c"]], k=0)
    assert list(fused) == ["b", "a", "c"] and fused["b"] == pytest.approx(1 / 2 + 1 / 1)


def test_the_dense_side_finds_synonyms_the_words_miss(search: TextSearch) -> None:
    result = search.search(TextQuery.parse("red dress", k=6))
    assert result.model_version == "hybrid:text-twin-1"
    hits = {h.product_id: h for h in result.hits}
    assert result.hits[0].product_id == "p1"  # both sides agree
    assert hits["p2"].lexical_rank is None and hits["p2"].dense_rank is not None
    assert hits["p2"].lexical == 0 and hits["p2"].terms == (0.0,)
    assert hits["p2"].dense == pytest.approx(1.0, abs=0.01)  # same concepts as the query
    assert hits["p1"].score == pytest.approx(
        1 / (61 + hits["p1"].dense_rank - 1) + 1 / (61 + hits["p1"].lexical_rank - 1)  # type: ignore[operator]
    )
    # without the text collection only the words count: the synonym is not found
    lexical = TextSearch(search.repo, search.targets).search(TextQuery.parse("red dress", k=6))
    assert lexical.model_version == LEXICAL_MODEL
    assert "p2" not in [h.product_id for h in lexical.hits]


def test_filters_hold_on_both_sides(search: TextSearch) -> None:
    assert set(_ids(search, "red", k=6, filters=Filters(category="boot"))) == {"p4", "p5"}


def test_an_excluding_term_drops_products_from_the_dense_side_too(search: TextSearch) -> None:
    found = _ids(search, "red boots -heel", k=6)
    assert "p5" in found and "p4" not in found


def test_a_negative_weight_pulls_the_query_vector_away(search: TextSearch) -> None:
    plain = search.search(TextQuery.parse({"boots": 1}, k=6)).hits
    less = search.search(TextQuery.parse({"boots": 1, "heel": -0.8}, k=6)).hits
    dense = {h.product_id: h.dense for h in plain}
    dense_less = {h.product_id: h.dense for h in less}
    assert dense["p4"] == pytest.approx(dense["p5"], abs=0.3)
    assert dense_less["p4"] < dense_less["p5"]  # type: ignore[operator]
    assert [h.product_id for h in less].index("p5") < [h.product_id for h in less].index("p4")


def test_pages_continue_without_overlap(search: TextSearch) -> None:
    everything = _ids(search, "red dress", k=6)
    assert (
        _ids(search, "red dress", k=2) + _ids(search, "red dress", k=2, offset=2)
        == (everything[:4])
    )


def test_the_writer_writes_each_text_collection_with_its_model(
    processor: ProductProcessor,
) -> None:
    images, texts, repo = MemoryVectorIndex(), MemoryVectorIndex(), MemoryRepository()
    towers = ConceptTowers()
    writer = ProductWriter(
        FixedTarget(images), repo, text_targets=FixedTextTarget(TextTarget(texts, towers))
    )
    events = [upsert(f"w{i}", 2, i) for i in range(3)]
    writer.write(processor.process([RawEvent(encode_event(e)) for e in events]))
    stored = texts.get(["w0", "w1", "w2"], with_vectors=True)
    assert {r.version for r in stored.values()} == {2}
    assert {r.model_version for r in stored.values()} == {"text-twin-1"}
    words_of = repo.get_products(["w0"])["w0"]["search_text"]
    assert stored["w0"].embedding is not None
    assert np.allclose(stored["w0"].embedding, towers.queries([words_of])[0], atol=1e-6)
    assert stored["w0"].category == images.get(["w0"])["w0"].category
    # a stale version changes nothing; a delete reaches the text collection too
    writer.write(processor.process([RawEvent(encode_event(upsert("w0", 1, 7)))]))
    assert texts.get(["w0"])["w0"].version == 2
    writer.write(processor.process([RawEvent(encode_event(delete("w1", 3)))]))
    assert set(texts.get(["w0", "w1", "w2"])) == {"w0", "w2"}


def test_the_reconcile_repairs_text_collections_with_their_product_tower(
    processor: ProductProcessor,
) -> None:
    images, texts, repo = MemoryVectorIndex(), MemoryVectorIndex(), MemoryRepository()
    towers = ConceptTowers()
    text_targets = FixedTextTarget(TextTarget(texts, towers, "text_c"))
    writer = ProductWriter(FixedTarget(images), repo, text_targets=text_targets)
    events = [upsert(f"r{i}", 1, i) for i in range(4)]
    writer.write(processor.process([RawEvent(encode_event(e)) for e in events]))
    written = texts.get(["r0"], with_vectors=True)["r0"]
    texts.delete(["r0"])  # missing
    texts.upsert([replace(texts.get(["r1"], with_vectors=True)["r1"], version=0)])  # stale
    texts.upsert([replace(written, product_id="ghost")])  # extra
    reconciler = Reconciler(repo, FixedTarget(images), chunk=2, text_targets=text_targets)
    image_drift, text_drift = reconciler.run()
    assert image_drift.drifted == [] and text_drift.collection == "text_c"
    assert (text_drift.missing, text_drift.stale, text_drift.extra) == (["r0"], ["r1"], ["ghost"])
    rows = texts.get(["r0", "r1", "r2", "r3", "ghost"], with_vectors=True)
    assert sorted(rows) == ["r0", "r1", "r2", "r3"] and rows["r1"].version == 1
    assert rows["r0"].model_version == "text-twin-1"
    assert np.allclose(rows["r0"].embedding, written.embedding, atol=1e-6)  # type: ignore[arg-type]
    assert [d.drifted for d in reconciler.run(repair=False)] == [[], []]
