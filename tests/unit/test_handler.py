"""The batch handler and the writer with no broker and no service (the in-memory stores):
failures become dead letters, writes are idempotent across both stores, flushes happen."""

from __future__ import annotations

from deploy.local.process import free_port
from processors.products import BatchResult, ProductProcessor, RawEvent
from schemas.dead_letter import ErrorKind
from schemas.events import ProductDelete, encode_event
from stores.base import FixedTarget
from stores.memory import MemoryRepository, MemoryVectorIndex
from stores.postgres import PostgresRepository
from stores.writer import ProductWriter
from streams.handler import BatchHandler
from streams.metrics import WorkerMetrics
from tests.events import upsert


def test_handler_indexes_a_batch_and_dead_letters_bad_records(processor: ProductProcessor) -> None:
    index, repo = MemoryVectorIndex(), MemoryRepository()
    metrics = WorkerMetrics()
    handler = BatchHandler(processor, ProductWriter(FixedTarget(index), repo), metrics)
    raws = [RawEvent(encode_event(upsert("h1", 1, 0)), "t", 0, 0), RawEvent(b"nope", "t", 0, 1)]
    handled = handler.handle(raws)
    assert handled.outcome is not None and handled.outcome.indexed == ["h1"]
    assert [d.error_kind for d in handled.dead_letters] == [ErrorKind.NOT_JSON]
    assert handled.dead_letters[0].offset == 1
    assert metrics.indexed._value.get() == 1
    assert index.get(["h1"])["h1"].version == 1 and repo.get_product("h1") is not None


def test_an_unreachable_store_dead_letters_the_batch_after_retries(
    processor: ProductProcessor,
) -> None:
    down = PostgresRepository.from_dsn(
        f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/nowhere?connect_timeout=1"
    )
    handler = BatchHandler(
        processor,
        ProductWriter(FixedTarget(MemoryVectorIndex()), down),
        WorkerMetrics(),
        retries=2,
        backoff_s=0.01,
    )
    raws = [RawEvent(encode_event(upsert(f"s{i}", 1, i)), "t", 0, i) for i in range(3)]
    handled = handler.handle(raws)
    assert handled.outcome is None
    assert sorted(d.product_id or "" for d in handled.dead_letters) == ["s0", "s1", "s2"]
    assert {d.error_kind for d in handled.dead_letters} == {ErrorKind.STORE_ERROR}
    assert "after 2 attempts" in handled.dead_letters[0].error_message
    assert handled.dead_letters[0].original() == raws[0].value


def test_index_writes_are_flushed_on_demand_and_after_enough_rows(
    processor: ProductProcessor,
) -> None:
    index = MemoryVectorIndex()
    writer = ProductWriter(FixedTarget(index), MemoryRepository(), flush_rows=3)
    handler = BatchHandler(processor, writer, WorkerMetrics())
    handler.handle([RawEvent(encode_event(upsert("f0", 1, 0)))])
    assert writer.unflushed == 1
    assert handler.flush() is True and writer.unflushed == 0
    assert handler.flush() is False  # nothing new to seal
    handler.handle([RawEvent(encode_event(upsert(f"f{i}", 1, i))) for i in range(1, 4)])
    assert writer.unflushed == 0  # three rows reached flush_rows: flushed in the write
    assert index.count() == 4
    assert index.get(["f3"])["f3"].version == 1


def test_the_writer_is_idempotent_and_keeps_both_stores_on_one_version(
    processor: ProductProcessor,
) -> None:
    index, repo = MemoryVectorIndex(), MemoryRepository()
    writer = ProductWriter(FixedTarget(index), repo)
    fresh = processor.process([RawEvent(encode_event(upsert(f"w{i}", 1, i))) for i in range(3)])
    out = writer.write(fresh)
    assert sorted(out.indexed) == ["w0", "w1", "w2"] and out.stale == 0
    again = writer.write(fresh)
    assert again.indexed == [] and again.stale == 3
    newer = processor.process([RawEvent(encode_event(upsert("w0", 2, 5, category="bag")))])
    assert writer.write(newer).indexed == ["w0"]
    assert index.get(["w0"])["w0"].version == repo.get_product("w0")["version"] == 2  # type: ignore[index]
    assert index.get(["w0"])["w0"].category == "bag"
    gone = writer.write(BatchResult(deletes=[ProductDelete(product_id="w1", version=1)]))
    assert gone.deleted == ["w1"] and "w1" not in index.get(["w1"])
    assert index.count() == repo.count_products() == 2
    late = processor.process([RawEvent(encode_event(upsert("w1", 1, 1)))])
    assert writer.write(late).stale == 1  # the tombstone keeps an old upsert out
    assert "w1" not in index.get(["w1"])
