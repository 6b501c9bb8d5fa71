"""The VectorIndex contract (stores/base.py): upsert replaces by id, exact top-k order, the
neutral filters, paging, narrowed fields, get and delete; on every backend."""

from __future__ import annotations

import uuid
from dataclasses import replace

import numpy as np
import pytest

from stores.base import IndexRow, VectorIndex
from stores.filters import Filters
from stores.milvus import MilvusConfig, MilvusVectorIndex
from tests.contract.conftest import DIM

ATTRIBUTE_SETS = [
    ("colour.red", "pattern.striped"),
    ("colour.blue", "pattern.solid"),
    ("colour.red", "colour.blue", "pattern.dotted"),
    (),
]


def rows(n: int, seed: int = 0) -> list[IndexRow]:
    vecs = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    return [
        IndexRow(
            product_id=f"p{i}",
            version=1,
            category=["dress", "bag"][i % 2],
            price=float(i),
            primary_colour=["red", "blue", "black"][i % 3],
            model_version="m1",
            colour_fractions={"red": 1.0},
            colour_vector=[0.5] * 4,
            predicted_category="category." + ["dress", "bag"][i % 2],
            attributes=ATTRIBUTE_SETS[i % len(ATTRIBUTE_SETS)],
            attribute_scores=dict.fromkeys(ATTRIBUTE_SETS[i % len(ATTRIBUTE_SETS)], 0.9),
            embedding=v,
        )
        for i, v in enumerate(vecs)
    ]


def query_of(row: IndexRow) -> np.ndarray:
    assert row.embedding is not None
    return np.asarray([row.embedding], dtype=np.float32)


def test_upsert_is_idempotent_and_replaces_by_id(index: VectorIndex) -> None:
    data = rows(50)
    index.upsert(data)
    index.upsert(data[:10])
    assert index.count() == 50
    index.upsert([replace(data[3], version=2, category="shoe")])
    assert index.count() == 50
    got = index.get(["p3"])["p3"]
    assert (got.category, got.version) == ("shoe", 2)


def test_rows_come_back_as_written(index: VectorIndex) -> None:
    data = rows(4)
    index.upsert(data)
    got = index.get(["p2"])["p2"]
    assert got == data[2]  # every field but the vector, which only with_vectors returns
    assert got.embedding is None
    assert got.attributes == ATTRIBUTE_SETS[2] and got.attribute_scores["pattern.dotted"] == 0.9
    hit = index.search(query_of(data[2]), 1)[0][0]
    assert hit.row == data[2] and hit.colour_fractions == {"red": 1.0}


def test_search_order_filters_and_paging(index: VectorIndex) -> None:
    data = rows(60)
    index.upsert(data)
    query = query_of(data[4])
    top = index.search(query, 5)[0]
    assert top[0].product_id == "p4" and top[0].score == pytest.approx(1.0, abs=1e-4)
    assert [h.score for h in top] == sorted((h.score for h in top), reverse=True)
    exact = (np.asarray([r.embedding for r in data]) @ query[0]).argsort()[::-1][:5]
    assert [h.product_id for h in top] == [f"p{i}" for i in exact]
    bags = index.search(query, 10, Filters(category="bag"))[0]
    assert len(bags) == 10 and all(h.row.category == "bag" for h in bags)
    priced = index.search(query, 60, Filters(min_price=10, max_price=20))[0]
    assert {h.product_id for h in priced} == {f"p{i}" for i in range(10, 21)}
    blue = index.search(query, 60, Filters(colour="blue", version=1))[0]
    assert {h.product_id for h in blue} == {f"p{i}" for i in range(1, 60, 3)}
    assert index.search(query, 60, Filters(version=2))[0] == []
    page2 = index.search(query, 5, offset=5)[0]
    assert [h.product_id for h in index.search(query, 10)[0]][5:] == [h.product_id for h in page2]
    assert len(index.search(np.vstack([query, query]), 3)) == 2


def test_fields_narrow_what_comes_back(index: VectorIndex) -> None:
    data = rows(10)
    index.upsert(data)
    hit = index.search(query_of(data[1]), 1, fields=["category"])[0][0]
    assert hit.product_id == "p1" and hit.row.category == "bag"
    assert hit.row.attribute_scores == {} and hit.row.primary_colour == ""
    colour = index.search(query_of(data[1]), 1, fields=["product_id", "colour_fractions"])[0][0]
    assert colour.row.colour_fractions == {"red": 1.0}  # the colour fields come together
    assert colour.row.colour_vector == [0.5] * 4 and colour.row.category == ""
    with pytest.raises(ValueError, match="unknown index fields"):
        index.search(query_of(data[1]), 1, fields=["colour"])


def test_prices_are_single_precision_on_every_backend(index: VectorIndex) -> None:
    data = [replace(r, price=p) for r, p in zip(rows(3), (19.99, 5.0, 0.1), strict=True)]
    index.upsert(data)
    got = index.get(["p0", "p2"])
    assert got["p0"].price == float(np.float32(19.99)) and got["p2"].price == float(np.float32(0.1))
    query = query_of(data[0])
    assert {h.product_id for h in index.search(query, 3, Filters(max_price=19.99))[0]} == {
        "p0",
        "p1",
        "p2",
    }
    assert {h.product_id for h in index.search(query, 3, Filters(min_price=19.0))[0]} == {"p0"}


def test_rows_handed_out_cannot_change_the_index(index: VectorIndex) -> None:
    data = rows(2)
    index.upsert(data)
    got = index.get(["p0"], with_vectors=True)["p0"]
    assert isinstance(got.attribute_scores, dict) and got.embedding is not None
    got.attribute_scores["colour.red"] = 0.0
    got.embedding[:] = 0
    again = index.get(["p0"], with_vectors=True)["p0"]
    assert again.attribute_scores["colour.red"] == 0.9 and np.any(again.embedding)


def test_attribute_filters_any_within_a_group_all_groups(index: VectorIndex) -> None:
    data = rows(40)
    index.upsert(data)

    def found(*keys: str) -> set[str]:
        return {
            h.product_id for h in index.search(query_of(data[0]), 40, Filters(attributes=keys))[0]
        }

    def expected(*groups: set[str]) -> set[str]:
        return {
            f"p{i}"
            for i in range(40)
            if all(g & set(ATTRIBUTE_SETS[i % len(ATTRIBUTE_SETS)]) for g in groups)
        }

    assert found("colour.red") == expected({"colour.red"}) and found("colour.red")
    assert found("colour.red", "colour.blue") == expected({"colour.red", "colour.blue"})
    both = found("colour.red", "pattern.striped")
    assert (
        both == expected({"colour.red"}, {"pattern.striped"}) == {f"p{i}" for i in range(0, 40, 4)}
    )
    assert found("material.denim") == set()


def test_filter_values_cannot_inject(index: VectorIndex) -> None:
    index.upsert(rows(20))
    query = np.zeros((1, DIM), dtype=np.float32)
    query[0, 0] = 1
    for evil in ['dress" or category != "x', "dress' or 1==1 or '", 'x\\" or true or \\"']:
        assert index.search(query, 20, Filters(category=evil))[0] == []
        assert index.search(query, 20, Filters(attributes=(evil,)))[0] == []


def test_delete_get_and_vectors(index: VectorIndex) -> None:
    data = rows(10)
    index.upsert(data)
    index.delete(["p1", "p2", "missing"])
    index.delete([])
    assert index.count() == 8
    got = index.get(["p1", "p3"], with_vectors=True)
    assert list(got) == ["p3"]
    vector, written = got["p3"].embedding, data[3].embedding
    assert vector is not None and written is not None and np.allclose(vector, written, atol=1e-6)
    assert index.get([]) == {}
    assert index.search(np.zeros((0, DIM), np.float32), 5) == []


def test_a_row_without_a_vector_is_refused(index: VectorIndex) -> None:
    good, bad = rows(2)
    with pytest.raises(ValueError, match="no embedding"):
        index.upsert([good, replace(bad, embedding=None)])
    assert index.count() == 0  # the batch is checked before anything is written


def test_versions_scan_every_row_once_in_pages(index: VectorIndex) -> None:
    data = [replace(r, version=100 + i) for i, r in enumerate(rows(40))]
    index.upsert(data[:25])
    index.flush()  # some rows sealed, some growing: the scan sees both
    index.upsert(data[25:])
    index.delete(["p7"])
    pages = list(index.versions(batch=9))  # (Milvus Lite 3 answers in one page)
    seen = [pid for page in pages for pid in page]
    assert len(seen) == len(set(seen)) == 39
    merged = {pid: v for page in pages for pid, v in page.items()}
    assert merged == {r.product_id: r.version for r in data if r.product_id != "p7"}


@pytest.mark.services
def test_a_bounded_read_still_finds_a_row_just_written(milvus_server: str) -> None:
    """Reads by id follow the search's consistency (Bounded: no time-tick wait); a row the
    bounded read misses is read again at Strong, so a product just written is never a 404."""
    config = MilvusConfig(milvus_server, search_consistency="Bounded")
    index = MilvusVectorIndex(config, f"bounded_{uuid.uuid4().hex[:6]}", DIM)
    index.ensure()
    try:
        for row in rows(5, seed=3):
            index.upsert([row])
            assert list(index.get([row.product_id, "missing"])) == [row.product_id]
    finally:
        index.drop()
        index.close()
