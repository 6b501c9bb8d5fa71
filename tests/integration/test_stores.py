"""The store adapters against real Postgres and two Milvus modes: Milvus Lite in-process (a
local file) and Milvus Lite's server (the http URI the worker and CLI share)."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from processors.products import BatchResult, ProductProcessor, RawEvent
from schemas.attributes import TAXONOMY_V1
from schemas.events import ImageRef, ProductDelete, encode_event
from schemas.milvus import product_collection
from schemas.tables import metadata
from stores.base import FixedTarget
from stores.migrate import downgrade, upgrade
from stores.milvus import MilvusVectorIndex
from stores.postgres import PostgresRepository
from stores.writer import ProductWriter
from stylestream.dev.milvus_server import milvus_standalone
from stylestream.dev.process import free_port
from stylestream.search import Filters
from stylestream.settings import Settings
from tests.integration.conftest import Stack
from tests.integration.events import upsert
from tests.synthetic import encode, synthetic_garment

pytestmark = pytest.mark.services
DIM = 8


def rows(n: int, seed: int = 0) -> list[dict[str, object]]:
    vecs = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    return [
        {
            "product_id": f"p{i}",
            "version": 1,
            "category": ["dress", "bag"][i % 2],
            "price": float(i),
            "primary_colour": ["red", "blue", "black"][i % 3],
            "model_version": "m1",
            "colour": {"fractions": {"red": 1.0}},
            "predicted_category": "category." + ["dress", "bag"][i % 2],
            "attributes": ATTRIBUTE_SETS[i % len(ATTRIBUTE_SETS)],
            "attribute_scores": dict.fromkeys(ATTRIBUTE_SETS[i % len(ATTRIBUTE_SETS)], 0.9),
            "embedding": v.tolist(),
        }
        for i, v in enumerate(vecs)
    ]


ATTRIBUTE_SETS = [
    ["colour.red", "pattern.striped"],
    ["colour.blue", "pattern.solid"],
    ["colour.red", "colour.blue", "pattern.dotted"],
    [],
]


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Milvus 2.3.5 standalone server, for the same adapter tests as Milvus Lite."""
    with milvus_standalone(tmp_path_factory.mktemp("milvus-server"), free_port()) as (uri, _):
        yield uri


@pytest.fixture(params=["lite-file", "lite-server", "milvus-standalone"])
def index(
    request: pytest.FixtureRequest, tmp_path: Path, running_services: Settings
) -> Iterator[MilvusVectorIndex]:
    if request.param == "lite-file":
        uri = str(tmp_path / "milvus.db")
    elif request.param == "lite-server":
        uri = running_services.milvus_uri
    else:
        uri = request.getfixturevalue("milvus_server")
    idx = MilvusVectorIndex(
        uri, f"store_test_{request.param.replace('-', '_')}", product_collection(DIM)
    )
    idx.drop()
    idx.ensure()
    yield idx
    idx.drop()
    idx.close()


def test_upsert_is_idempotent_and_replaces_by_id(index: MilvusVectorIndex) -> None:
    data = rows(50)
    index.upsert(data)
    index.upsert(data[:10])
    assert index.count() == 50
    index.upsert([{**data[3], "version": 2, "category": "shoe"}])
    assert index.count() == 50
    assert index.get(["p3"])["p3"]["category"] == "shoe"


def test_search_filters_and_paging(index: MilvusVectorIndex) -> None:
    data = rows(60)
    index.upsert(data)
    query = np.array([data[4]["embedding"]], dtype=np.float32)
    top = index.search(query, 5)[0]
    assert top[0].product_id == "p4" and top[0].score == pytest.approx(1.0, abs=1e-4)
    assert [h.score for h in top] == sorted((h.score for h in top), reverse=True)
    bags = index.search(query, 10, Filters(category="bag").expression())[0]
    assert bags and all(h.fields["category"] == "bag" for h in bags)
    priced = index.search(query, 60, Filters(min_price=10, max_price=20).expression())[0]
    assert {h.product_id for h in priced} == {f"p{i}" for i in range(10, 21)}
    page2 = index.search(query, 5, offset=5)[0]
    assert [h.product_id for h in index.search(query, 10)[0]][5:] == [h.product_id for h in page2]


def test_attribute_filters_on_every_backend(index: MilvusVectorIndex) -> None:
    data = rows(40)
    index.upsert(data)
    query = np.array([data[0]["embedding"]], dtype=np.float32)

    def found(*keys: str) -> set[str]:
        hits = index.search(query, 40, Filters(attributes=keys).expression())[0]
        return {h.product_id for h in hits}

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
    row = index.get(["p2"])["p2"]
    assert (
        row["attributes"] == ATTRIBUTE_SETS[2] and row["attribute_scores"]["pattern.dotted"] == 0.9
    )


def test_filter_values_cannot_inject(index: MilvusVectorIndex) -> None:
    index.upsert(rows(20))
    query = np.zeros((1, DIM), dtype=np.float32)
    query[0, 0] = 1
    for evil in ['dress" or category != "x', "dress' or 1==1 or '", 'x\\" or true or \\"']:
        assert index.search(query, 20, Filters(category=evil).expression())[0] == []


def test_delete_and_get(index: MilvusVectorIndex) -> None:
    index.upsert(rows(10))
    index.delete(["p1", "p2", "missing"])
    assert index.count() == 8
    got = index.get(["p1", "p3"], with_vectors=True)
    assert list(got) == ["p3"] and len(got["p3"]["embedding"]) == DIM


def test_migrations_match_the_table_definitions(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack()
    engine = create_engine(stack.settings.pg_dsn)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []
    downgrade(stack.settings.pg_dsn, "base")
    assert "attribute_taxonomy" not in inspect(engine).get_table_names()
    assert "products" not in inspect(engine).get_table_names()
    upgrade(stack.settings.pg_dsn)
    assert {"products", "product_ledger"} <= set(inspect(engine).get_table_names())
    assert len(PostgresRepository(engine).taxonomy()) == len(TAXONOMY_V1)  # seeded again
    engine.dispose()


def test_repository_applies_only_newer_versions(make_stack: Callable[..., Stack]) -> None:
    repo = make_stack().repo
    now = datetime.now(UTC)

    def row(pid: str, version: int, title: str) -> dict[str, object]:
        return {
            "product_id": pid,
            "version": version,
            "title": title,
            "brand": None,
            "category": "dress",
            "price": 1,
            "currency": "EUR",
            "image_ref": "x",
            "synthetic_fields": [],
            "roi_box": [0, 0, 1, 1],
            "image_width": 1,
            "image_height": 1,
            "primary_colour": "red",
            "colour_fractions": {},
            "colour_vector": [0.0],
            "model_version": "m",
            "event_time": now,
            "produced_at": now,
            "indexed_at": now,
        }

    assert repo.apply([row("a", 2, "v2"), row("b", 1, "b1")], []) == (["a", "b"], [])
    assert repo.apply([row("a", 2, "dup"), row("a", 1, "old")][:1], []) == ([], [])
    assert repo.apply([row("a", 1, "old")], []) == ([], [])
    assert repo.get_product("a")["title"] == "v2"  # type: ignore[index]
    assert repo.apply([row("a", 3, "v3")], [("b", 1)]) == (["a"], ["b"])
    assert repo.get_product("b") is None and repo.ledger(["b"])["b"].deleted
    assert repo.apply([row("b", 1, "again")], [("b", 1)]) == ([], [])  # stale after delete
    assert repo.apply([row("b", 2, "back")], []) == (["b"], [])  # a newer version returns
    assert repo.count_products() == 2


def test_writer_is_idempotent_across_both_stores(
    make_stack: Callable[..., Stack], processor: ProductProcessor
) -> None:
    stack = make_stack()
    writer = ProductWriter(FixedTarget(stack.index), stack.repo)
    fresh = processor.process([RawEvent(encode_event(upsert(f"w{i}", 1, i))) for i in range(3)])
    out = writer.write(fresh)
    assert sorted(out.indexed) == ["w0", "w1", "w2"] and out.stale == 0
    again = writer.write(fresh)
    assert again.indexed == [] and again.stale == 3
    gone = writer.write(BatchResult(deletes=[ProductDelete(product_id="w1", version=1)]))
    assert gone.deleted == ["w1"]
    assert stack.index.count() == 2 and stack.repo.count_products() == 2


def test_synthetic_garment_colour_lands_in_both_stores(
    make_stack: Callable[..., Stack], processor: ProductProcessor
) -> None:
    stack = make_stack()
    red = encode(synthetic_garment(colour=(200, 30, 40)))
    event = upsert("red-1", 1, 0).model_copy(
        update={"image": ImageRef(data_base64=base64.b64encode(red).decode())}
    )
    result = processor.process([RawEvent(encode_event(event))])
    ProductWriter(FixedTarget(stack.index), stack.repo).write(result)
    assert stack.repo.get_product("red-1")["primary_colour"] == "red"  # type: ignore[index]
    assert stack.index.get(["red-1"])["red-1"]["primary_colour"] == "red"
    hits = stack.index.search(
        result.upserts[0].embedding[None, :], 1, Filters(colour="red").expression()
    )[0]
    assert hits[0].product_id == "red-1"


def test_training_pairs_are_stored_once_per_pair_id(make_stack: Callable[..., Stack]) -> None:
    from processors.clicks import ClickMiner, ListSampler
    from schemas.interactions import Interaction, Query, SearchImpression, Shown
    from stores.pairs import PairRepository

    stack = make_stack()
    miner = ClickMiner(ListSampler([f"x{i}" for i in range(20)]))
    shown = SearchImpression(
        impression_id="imp-9",
        session_id="s",
        query=Query(kind="product", product_id="x0"),
        results=[Shown(product_id=f"x{i}", position=i) for i in range(1, 5)],
        model_version="m",
    )
    state = miner.on_impression(None, shown).state
    pair = miner.on_click(
        state,
        Interaction(
            type="interaction.click", impression_id="imp-9", session_id="s", product_id="x3"
        ),
    ).pairs[0]
    repo = PairRepository(stack.repo.engine)
    before = datetime.now(UTC)
    assert repo.write([pair]) == ["imp-9:x3"]
    assert repo.write([pair]) == []  # a replayed pair changes nothing
    rows = list(repo.since(before.replace(year=2000)))
    assert len(rows) == 1 and rows[0]["hard_negatives"] == ["x1", "x2"]
    assert rows[0]["query"] == {"kind": "product", "product_id": "x0", "filters": {}}
    assert list(repo.since(datetime.now(UTC))) == []
