"""The stores together on real services: the migrations, the writer across Milvus and Postgres,
and training pairs. (Each adapter's own contract is tests/contract.)"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from processors.products import BatchResult, ProductProcessor, RawEvent
from processors.text import lexemes, parse_terms
from schemas.attributes import TAXONOMY_V1
from schemas.events import ImageRef, ProductDelete, encode_event
from schemas.tables import metadata
from stores.base import FixedTarget
from stores.filters import Filters
from stores.migrate import downgrade, upgrade
from stores.postgres import PostgresRepository
from stores.writer import ProductWriter
from tests.events import upsert
from tests.integration.conftest import Stack
from tests.synthetic import encode, synthetic_garment

pytestmark = pytest.mark.services
DIM = 8


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


def test_the_text_migration_fills_in_the_words_the_worker_writes(
    make_stack: Callable[..., Stack], processor: ProductProcessor
) -> None:
    stack = make_stack()
    result = processor.process([RawEvent(encode_event(upsert(f"t{i}", 1, i))) for i in range(4)])
    ProductWriter(FixedTarget(stack.index), stack.repo).write(result)
    written = {
        p: r["search_text"] for p, r in stack.repo.get_products(["t0", "t1", "t2", "t3"]).items()
    }
    downgrade(stack.settings.pg_dsn, "0010")  # products stored before text search existed
    upgrade(stack.settings.pg_dsn)
    filled = {p: r["search_text"] for p, r in stack.repo.get_products(list(written)).items()}
    assert {p: sorted(lexemes(t)) for p, t in filled.items()} == {
        p: sorted(lexemes(t)) for p, t in written.items()
    }
    category = stack.repo.get_product("t0")["category"]  # type: ignore[index]
    found = stack.repo.text_search(parse_terms(category.replace("-", " ")), 10)
    assert "t0" in [m.product_id for m in found]


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
    assert stack.index.get(["red-1"])["red-1"].primary_colour == "red"
    hits = stack.index.search(result.upserts[0].embedding[None, :], 1, Filters(colour="red"))[0]
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


def test_a_text_search_past_its_time_limit_is_a_store_timeout(
    make_stack: Callable[..., Stack], monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import func, select

    import stores.postgres
    from stores.base import StoreTimeout

    stack = make_stack()
    slow = PostgresRepository(stack.repo.engine, text_timeout_s=0.05)
    monkeypatch.setattr(stores.postgres, "text_query", lambda *_: select(func.pg_sleep(1)))
    with pytest.raises(StoreTimeout):
        slow.text_search(parse_terms("red"), 10)
