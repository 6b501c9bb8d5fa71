"""The batch handler without a broker (real stores): failures become dead letters."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from processors.products import ProductProcessor, RawEvent
from schemas.dead_letter import ErrorKind
from schemas.events import encode_event
from stores.base import FixedTarget
from stores.postgres import PostgresRepository
from stores.writer import ProductWriter
from streams.handler import BatchHandler
from streams.metrics import WorkerMetrics
from stylestream.dev.process import free_port
from tests.integration.conftest import Stack
from tests.integration.events import upsert

pytestmark = pytest.mark.services


def test_handler_indexes_a_batch_and_dead_letters_bad_records(
    make_stack: Callable[..., Stack], processor: ProductProcessor
) -> None:
    stack = make_stack()
    metrics = WorkerMetrics()
    handler = BatchHandler(processor, ProductWriter(FixedTarget(stack.index), stack.repo), metrics)
    raws = [RawEvent(encode_event(upsert("h1", 1, 0)), "t", 0, 0), RawEvent(b"nope", "t", 0, 1)]
    handled = handler.handle(raws)
    assert handled.outcome is not None and handled.outcome.indexed == ["h1"]
    assert [d.error_kind for d in handled.dead_letters] == [ErrorKind.NOT_JSON]
    assert handled.dead_letters[0].offset == 1
    assert metrics.indexed._value.get() == 1


def test_an_unreachable_store_dead_letters_the_batch_after_retries(
    make_stack: Callable[..., Stack], processor: ProductProcessor
) -> None:
    stack = make_stack()
    down = PostgresRepository.from_dsn(
        f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/nowhere?connect_timeout=1"
    )
    handler = BatchHandler(
        processor,
        ProductWriter(FixedTarget(stack.index), down),
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
    make_stack: Callable[..., Stack], processor: ProductProcessor
) -> None:
    stack = make_stack()
    writer = ProductWriter(FixedTarget(stack.index), stack.repo, flush_rows=3)
    handler = BatchHandler(processor, writer, WorkerMetrics())
    handler.handle([RawEvent(encode_event(upsert("f0", 1, 0)))])
    assert writer.unflushed == 1
    assert handler.flush() is True and writer.unflushed == 0
    assert handler.flush() is False  # nothing new to seal
    handler.handle([RawEvent(encode_event(upsert(f"f{i}", 1, i))) for i in range(1, 4)])
    assert writer.unflushed == 0  # three rows reached flush_rows: flushed in the write
    assert stack.index.count() == 4
    assert stack.index.get(["f3"])["f3"]["version"] == 1
