"""The batch handler and the writer with no broker and no service (the in-memory stores, with
faults injected): each event meets its own fate, a dependency's fault is waited out and never
dead-lettered, writes are idempotent across both stores, flushes happen."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from processors.products import BatchResult, ProductProcessor, RawEvent
from schemas.dead_letter import ErrorKind
from schemas.events import ProductDelete, encode_event
from stores.base import FixedTarget
from stores.memory import MemoryRepository, MemoryVectorIndex
from stores.writer import ProductWriter
from streams.faults import Backoff, Dependencies, FaultMetrics, Heartbeat
from streams.handler import BatchHandler
from streams.metrics import WorkerMetrics
from tests.events import upsert


def record(pid: str, version: int = 1, photo: int = 0, offset: int = 0) -> RawEvent:
    event = upsert(pid, version, photo)
    return RawEvent(encode_event(event), "products.v1", 0, offset, pid.encode())


class Outage:
    """A dependency that is down for the next ``n`` probes or calls."""

    def __init__(self) -> None:
        self.left = 0

    def check(self) -> None:
        if self.left > 0:
            self.left -= 1
            raise ConnectionError("connection refused")


def make_handler(
    processor: Any,
    repo: MemoryRepository | None = None,
    index: MemoryVectorIndex | None = None,
    probe: Callable[[], None] = lambda: None,
) -> tuple[BatchHandler, MemoryRepository, MemoryVectorIndex, list[float]]:
    repo = repo or MemoryRepository()
    index = index or MemoryVectorIndex()
    slept: list[float] = []
    metrics = WorkerMetrics()
    dependencies = Dependencies(
        {"store": probe},
        FaultMetrics(metrics.registry),
        Heartbeat(),
        Backoff(0.5, 4.0),
        sleep=slept.append,
    )
    writer = ProductWriter(FixedTarget(index), repo)
    return BatchHandler(processor, writer, metrics, dependencies), repo, index, slept


def counter(handler: BatchHandler, name: str, **labels: str) -> float:
    registry: CollectorRegistry = handler.metrics.registry
    return registry.get_sample_value(name, labels) or 0.0


def test_a_batch_is_indexed_and_bad_records_dead_lettered(processor: ProductProcessor) -> None:
    handler, repo, index, _ = make_handler(processor)
    raws = [record("h1"), RawEvent(b"nope", "products.v1", 0, 1, b"x")]
    handled = handler.handle(raws)
    assert handled.outcome is not None and handled.outcome.indexed == ["h1"]
    assert [d.error_kind for d in handled.dead_letters] == [ErrorKind.NOT_JSON]
    assert handled.dead_letters[0].offset == 1
    assert counter(handler, "stylestream_products_indexed_total") == 1
    assert index.get(["h1"])["h1"].version == 1 and repo.get_product("h1") is not None


def test_a_record_keyed_by_something_else_is_dead_lettered(processor: ProductProcessor) -> None:
    handler, repo, _, _ = make_handler(processor)
    wrong = RawEvent(encode_event(upsert("k1", 1, 0)), "products.v1", 0, 0, b"other")
    unkeyed = RawEvent(encode_event(upsert("k2", 1, 1)), "products.v1", 0, 1, None)
    handled = handler.handle([wrong, unkeyed, record("k3", photo=2)])
    assert [(d.product_id, d.error_kind) for d in handled.dead_letters] == [
        ("k1", ErrorKind.KEY_MISMATCH),
        ("k2", ErrorKind.KEY_MISMATCH),
    ]
    assert repo.count_products() == 1


class FlakyRepository(MemoryRepository):
    """Postgres during a failover: writes fail and the probe fails while ``outage`` lasts."""

    def __init__(self, outage: Outage) -> None:
        super().__init__()
        self.outage = outage

    def apply(self, *args: Any, **kwargs: Any) -> tuple[list[str], list[str]]:
        self.outage.check()
        return super().apply(*args, **kwargs)


def test_a_store_outage_is_waited_out_and_nothing_is_dead_lettered(
    processor: ProductProcessor,
) -> None:
    outage = Outage()
    repo = FlakyRepository(outage)
    handler, _, index, slept = make_handler(processor, repo=repo, probe=outage.check)
    outage.left = 12  # many failed probes and writes: far more than any retry count
    handled = handler.handle([record(f"s{i}", photo=i, offset=i) for i in range(3)])
    assert handled.dead_letters == []
    assert handled.outcome is not None and sorted(handled.outcome.indexed) == ["s0", "s1", "s2"]
    assert index.count() == repo.count_products() == 3
    assert max(slept) == 1.0 and sum(slept) > 10  # capped backoff, slept in 1 s beats
    assert counter(handler, "stylestream_dependency_waits_total", dependency="store") > 3
    assert counter(handler, "stylestream_dependency_up", dependency="store") == 1


class RefusingIndex(MemoryVectorIndex):
    """A healthy Milvus that refuses one product's row (as for data it cannot take)."""

    def __init__(self, refused: str) -> None:
        super().__init__()
        self.refused = refused

    def upsert(self, rows: Sequence[Any]) -> None:
        if any(r.product_id == self.refused for r in rows):
            raise ValueError(f"field too long for {self.refused}")
        super().upsert(rows)


def test_a_product_a_healthy_store_refuses_is_dead_lettered_alone(
    processor: ProductProcessor,
) -> None:
    handler, repo, index, _ = make_handler(processor, index=RefusingIndex("r3"))
    handled = handler.handle([record(f"r{i}", photo=i, offset=i) for i in range(6)])
    assert [(d.product_id, d.error_kind) for d in handled.dead_letters] == [
        ("r3", ErrorKind.STORE_ERROR)
    ]
    assert "field too long" in handled.dead_letters[0].error_message
    assert sorted(index.get([f"r{i}" for i in range(6)])) == ["r0", "r1", "r2", "r4", "r5"]
    assert repo.count_products() == 5 and repo.get_product("r3") is None  # both stores agree


class CrashingProcessor:
    """The real processor, except that it raises (a bug) on any batch holding ``bad``."""

    def __init__(self, inner: ProductProcessor, bad: set[str]) -> None:
        self.inner = inner
        self.bad = bad

    def process(self, raws: Sequence[RawEvent]) -> BatchResult:
        if any(r.key and r.key.decode() in self.bad for r in raws):
            raise RecursionError("maximum recursion depth exceeded")
        return self.inner.process(raws)


def test_an_event_that_crashes_processing_is_found_and_dead_lettered_alone(
    processor: ProductProcessor,
) -> None:
    handler, repo, _, _ = make_handler(CrashingProcessor(processor, {"c2", "c5"}))
    handled = handler.handle([record(f"c{i}", photo=i, offset=i) for i in range(8)])
    assert sorted((d.product_id, d.error_kind) for d in handled.dead_letters) == [
        ("c2", ErrorKind.PROCESSING_ERROR),
        ("c5", ErrorKind.PROCESSING_ERROR),
    ]
    assert repo.count_products() == 6


def test_when_every_event_fails_alike_the_batch_waits_instead(
    processor: ProductProcessor,
) -> None:
    """A broken model fails every event: not theirs to pay for. The batch is retried (with
    backoff) until it passes; nothing is dead-lettered."""
    crashing = CrashingProcessor(processor, {"a0", "a1", "a2"})
    handler, repo, _, slept = make_handler(crashing)

    def repair(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) > 6:
            crashing.bad.clear()  # the fix is deployed

    handler.dependencies.sleep = repair
    handled = handler.handle([record(f"a{i}", photo=i, offset=i) for i in range(3)])
    assert handled.dead_letters == [] and repo.count_products() == 3
    assert counter(handler, "stylestream_batch_stalls_total") >= 1


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


def test_a_failed_index_write_leaves_postgres_unchanged(processor: ProductProcessor) -> None:
    """Postgres commits only after Milvus took the rows: a refusal changes neither store."""
    index, repo = RefusingIndex("p1"), MemoryRepository()
    writer = ProductWriter(FixedTarget(index), repo)
    batch = processor.process([RawEvent(encode_event(upsert(f"p{i}", 1, i))) for i in range(2)])
    with pytest.raises(ValueError, match="too long"):
        writer.write(batch)
    assert repo.count_products() == 0 and repo.ledger(["p0", "p1"]) == {}


def test_index_writes_are_flushed_on_demand_and_after_enough_rows(
    processor: ProductProcessor,
) -> None:
    index = MemoryVectorIndex()
    handler, _, _, _ = make_handler(processor, index=index)
    handler.writer.flush_rows = 3
    handler.handle([record("f0")])
    assert handler.writer.unflushed == 1
    assert handler.flush() is True and handler.writer.unflushed == 0
    assert handler.flush() is False  # nothing new to seal
    handler.handle([record(f"f{i}", photo=i, offset=i) for i in range(1, 4)])
    assert handler.writer.unflushed == 0  # three rows reached flush_rows: flushed in the write
    assert index.count() == 4
    assert index.get(["f3"])["f3"].version == 1


class PickyProcessor:
    """Each listed product crashes processing with an error of its own."""

    def __init__(self, inner: ProductProcessor, errors: dict[str, Exception]) -> None:
        self.inner = inner
        self.errors = errors

    def process(self, raws: Sequence[RawEvent]) -> BatchResult:
        for r in raws:
            if r.key and r.key.decode() in self.errors:
                raise self.errors[r.key.decode()]
        return self.inner.process(raws)


def test_two_poison_events_with_their_own_errors_are_both_dead_lettered(
    processor: ProductProcessor,
) -> None:
    """A batch of only bad events is not "failing alike" when their errors differ."""
    errors = {"x0": KeyError("a"), "x1": ZeroDivisionError("b")}
    handler, _, _, _ = make_handler(PickyProcessor(processor, errors))
    handled = handler.handle([record("x0"), record("x1", photo=1, offset=1)])
    assert sorted(d.product_id or "" for d in handled.dead_letters) == ["x0", "x1"]
    assert counter(handler, "stylestream_batch_stalls_total") == 0


def test_a_batch_failing_alike_for_good_is_dead_lettered_after_its_retries(
    processor: ProductProcessor,
) -> None:
    handler, _, _, _ = make_handler(CrashingProcessor(processor, {"y0", "y1"}))
    handled = handler.handle([record("y0"), record("y1", photo=1, offset=1)])
    assert sorted(d.product_id or "" for d in handled.dead_letters) == ["y0", "y1"]
    assert counter(handler, "stylestream_batch_stalls_total") == handler.alike_retries


def test_batches_of_one_failing_alike_wait_after_the_first(processor: ProductProcessor) -> None:
    """At low traffic every batch holds one event: the batch before is the neighbour. A
    broken model dead-letters the first event (no neighbour yet, replayable), then waits."""
    crashing = CrashingProcessor(processor, {"z0", "z1", "z2"})
    handler, repo, _, slept = make_handler(crashing)
    first = handler.handle([record("z0")])
    assert [d.product_id for d in first.dead_letters] == ["z0"]
    assert counter(handler, "stylestream_batch_stalls_total") == 0

    def repair(seconds: float) -> None:
        slept.append(seconds)
        if counter(handler, "stylestream_batch_stalls_total") >= 2:
            crashing.bad.clear()  # the fix is deployed

    handler.dependencies.sleep = repair
    second = handler.handle([record("z1", photo=1, offset=1)])
    assert second.dead_letters == [] and repo.get_product("z1") is not None
    assert counter(handler, "stylestream_batch_stalls_total") >= 2
    # a lone poison event after a good batch has nothing alike before it: dead-lettered
    handler.dependencies.sleep = slept.append
    crashing.bad.add("z2")
    handler.handle([record("z3", photo=3, offset=3)])
    third = handler.handle([record("z2", photo=2, offset=2)])
    assert [d.product_id for d in third.dead_letters] == ["z2"]


def test_lone_failures_far_apart_are_not_taken_for_one_fault(processor: ProductProcessor) -> None:
    """Two poison events with the same message, minutes apart, are each dead-lettered."""
    handler, _, _, _ = make_handler(CrashingProcessor(processor, {"w0", "w1"}))
    now = [1000.0]
    handler.clock = lambda: now[0]
    assert [d.product_id for d in handler.handle([record("w0")]).dead_letters] == ["w0"]
    now[0] += handler.alike_within_s + 1
    later = handler.handle([record("w1", photo=1, offset=1)])
    assert [d.product_id for d in later.dead_letters] == ["w1"]
    assert counter(handler, "stylestream_batch_stalls_total") == 0
