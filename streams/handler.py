"""One batch of product records: process, write, dead-letter. Kafka-free so it runs in tests
without a broker; the Faust agent only feeds it and sends what it returns.

Each event meets its own fate. Errors that are an event's own (bad JSON, schema, image) come
back from the processor as failures. Anything else is first put to the dependencies: a store
error that says so, or a store that fails its probe, holds the batch back (capped backoff,
the partition stays where it is) until the store answers, then the same batch is retried; no
event is dead-lettered for a dependency's fault. Otherwise the batch is split in two and each
half retried, down to the single event that fails alone while its neighbours pass (it alone
is dead-lettered, after a few tries). When every event of a batch fails alike, the fault is
not theirs either (a broken model, a wrong schema): the batch is retried after a backoff.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from processors.products import BatchResult, Failure, ProductProcessor, RawEvent
from schemas.dead_letter import DeadLetter, ErrorKind
from stores.dead_letters import OriginalStore
from stores.faults import transient
from stores.writer import ProductWriter, WriteOutcome
from streams.faults import Dependencies
from streams.metrics import WorkerMetrics

log = logging.getLogger(__name__)
Done = TypeVar("Done")

NOTHING = WriteOutcome([], [], 0)


@dataclass
class HandledBatch:
    outcome: WriteOutcome | None
    dead_letters: list[DeadLetter] = field(default_factory=list)


def dead_letter(f: Failure, inline_bytes: int | None) -> DeadLetter:
    return DeadLetter.wrap(
        f.raw.value,
        topic=f.raw.topic,
        partition=f.raw.partition,
        offset=f.raw.offset,
        key=f.raw.key,
        kind=f.kind,
        message=f.message,
        product_id=f.product_id,
        inline_bytes=inline_bytes,
    )


def _merge(a: WriteOutcome, b: WriteOutcome) -> WriteOutcome:
    return WriteOutcome(a.indexed + b.indexed, a.deleted + b.deleted, a.stale + b.stale)


class _Alike(Exception):
    """Every event of a batch failed alike: not the events' fault (retry the whole batch)."""

    def __init__(self, count: int) -> None:
        super().__init__(f"{count} events failed alike")
        self.count = count


class BatchHandler:
    def __init__(
        self,
        processor: ProductProcessor,
        writer: ProductWriter,
        metrics: WorkerMetrics,
        dependencies: Dependencies,
        *,
        retries: int = 3,
        alike_retries: int = 8,
        originals: OriginalStore | None = None,
        inline_bytes: int = 256 * 1024,
        alike_within_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``retries``: tries of a single event that fails while its stores are healthy.
        ``originals``: where a dead letter's original over ``inline_bytes`` is kept (so the
        letter fits a Kafka message); None carries every original inline."""
        self.processor = processor
        self.writer = writer
        self.metrics = metrics
        self.dependencies = dependencies
        self.retries = retries
        self.alike_retries = alike_retries
        self.originals = originals
        self.inline_bytes = inline_bytes if originals is not None else None
        # the error of the last batch whose events all failed with it, per stage: a batch of
        # one has no neighbour to compare with, so the batch before is its neighbour (at low
        # traffic a broken model dead-letters one event, not all of them)
        # (older than ``alike_within_s``: two unrelated poison events are not one fault)
        self._lone: dict[str, tuple[str, float] | None] = {"processing": None, "writing": None}
        self.alike_within_s = alike_within_s
        self.clock = clock

    def flush(self) -> bool:
        """Seal recent index writes (called on a timer and at shutdown); never raises."""
        try:
            return self.writer.flush()
        except Exception as exc:  # the next timer tick retries; searches still see the rows
            log.warning("index flush failed: %s", exc)
            return False

    def handle(self, raws: Sequence[RawEvent]) -> HandledBatch:
        """Never raises, and returns only when every event is applied or dead-lettered for a
        fault of its own."""
        started = time.perf_counter()
        self.metrics.consumed.inc(len(raws))
        heartbeat = self.dependencies.heartbeat
        heartbeat.busy = True
        try:
            result = self._whole("processing", lambda alike: self._processed(raws, alike))
            self.metrics.stale.inc(result.superseded)
            outcome, failures = self._whole("writing", lambda alike: self._written(result, alike))
        finally:
            heartbeat.busy = False
            heartbeat.beat()
        if outcome.indexed:
            self._observe_lag(result, outcome)
        return self._finish(outcome, result.failures + failures, started)

    def _whole(self, what: str, step: Callable[[bool], Done]) -> Done:
        """``step(alike_allowed)``, retried whole while every event of the batch fails with
        the same error, at most ``alike_retries`` times: then the events are dead-lettered
        (a bug that fails every event must not hold a partition forever unseen: the stalls
        metric and its alert say so meanwhile)."""
        attempt = 0
        while True:
            try:
                return step(attempt < self.alike_retries)
            except _Alike as exc:
                attempt += 1
                self.dependencies.metrics.stalls.inc()
                log.error("%s failed alike for all %d events of a batch", what, exc.count)
                self.dependencies.pause(attempt, f"{what}: {exc.__cause__}")

    def _failed_alike(self, stage: str, count: int, messages: list[str]) -> bool:
        """Whether all ``count`` events failed with one error, and there is something to
        compare with: another event of the batch, or the previous batch of one."""
        whole = count > 0 and len(messages) == count and len(set(messages)) == 1
        before, now = self._lone[stage], self.clock()
        recent = before is not None and now - before[1] <= self.alike_within_s
        alike = whole and (
            count > 1 or (recent and before is not None and before[0] == messages[0])
        )
        self._lone[stage] = (messages[0], now) if whole else None
        return alike

    def _processed(self, raws: Sequence[RawEvent], alike_allowed: bool) -> BatchResult:
        result = self._process(raws)
        unexpected = [f.message for f in result.failures if f.kind is ErrorKind.PROCESSING_ERROR]
        if self._failed_alike("processing", len(raws), unexpected) and alike_allowed:
            raise _Alike(len(raws)) from Exception(unexpected[0])
        return result

    def _written(
        self, result: BatchResult, alike_allowed: bool
    ) -> tuple[WriteOutcome, list[Failure]]:
        outcome, failures = self._write(result)
        count = len(result.upserts) + len(result.deletes)
        refused = {f.product_id: f.message for f in failures}  # (a product's sources: one)
        messages = list(refused.values()) if outcome == NOTHING else []
        if self._failed_alike("writing", count, messages) and alike_allowed:
            raise _Alike(count) from Exception(messages[0])
        return outcome, failures

    def _process(self, raws: Sequence[RawEvent]) -> BatchResult:
        attempt = 0
        while True:
            try:
                return self.processor.process(raws)
            except Exception as exc:
                attempt += 1
                if self._dependency_fault(exc, attempt, "processing"):
                    continue
                if len(raws) > 1:  # find the event at fault: each half on its own
                    middle = len(raws) // 2
                    return self._process(raws[:middle]).merged(self._process(raws[middle:]))
                if attempt < self.retries:
                    self.dependencies.pause(attempt, f"processing one event: {exc}")
                    continue
                log.error("an event fails processing alone, dead-lettered: %r", exc)
                return BatchResult(failures=[_failure(raws[0], ErrorKind.PROCESSING_ERROR, exc)])

    def _write(self, result: BatchResult) -> tuple[WriteOutcome, list[Failure]]:
        if not result.upserts and not result.deletes:
            return NOTHING, []
        attempt = 0
        while True:
            try:
                return self.writer.write(result), []
            except Exception as exc:
                attempt += 1
                if self._dependency_fault(exc, attempt, "writing"):
                    continue
                halves = result.halves()
                if halves is not None:  # find the product a store refuses: each half alone
                    (left, left_failed), (right, right_failed) = map(self._write, halves)
                    return _merge(left, right), left_failed + right_failed
                if attempt < self.retries:
                    self.dependencies.pause(attempt, f"writing one product: {exc}")
                    continue
                log.error("a healthy store refuses one product, dead-lettered: %r", exc)
                ids = [u.product_id for u in result.upserts] + [
                    d.product_id for d in result.deletes
                ]
                return NOTHING, [  # (one product: the halves ran out)
                    _failure(raw, ErrorKind.STORE_ERROR, exc, pid)
                    for pid in ids
                    for raw in result.sources.get(pid, [])
                ]

    def _dependency_fault(self, exc: Exception, attempt: int, what: str) -> bool:
        """Whether ``exc`` is a dependency's doing; if so, waits until it answers again."""
        if transient(exc) or self.dependencies.down():
            self.dependencies.pause(attempt, f"{what}: {type(exc).__name__}: {exc}")
            return True
        return False

    def _observe_lag(self, result: BatchResult, outcome: WriteOutcome) -> None:
        indexed = set(outcome.indexed)
        now = datetime.now(UTC)
        for u in result.upserts:
            if u.product_id in indexed:
                sent = u.event.produced_at or u.event.event_time
                self.metrics.lag_seconds.observe(max(0.0, (now - sent).total_seconds()))

    def _finish(
        self, outcome: WriteOutcome, failures: list[Failure], started: float
    ) -> HandledBatch:
        self.metrics.indexed.inc(len(outcome.indexed))
        self.metrics.deleted.inc(len(outcome.deleted))
        self.metrics.stale.inc(outcome.stale)
        letters = [dead_letter(f, self.inline_bytes) for f in failures]
        for f, letter in zip(failures, letters, strict=True):
            if letter.original_stored:
                assert self.originals is not None
                keep_original(self.originals, self.dependencies, f.raw.value)
            self.metrics.dead_lettered.labels(error_kind=f.kind.value).inc()
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        return HandledBatch(outcome, letters)


def keep_original(originals: OriginalStore, dependencies: Dependencies, original: bytes) -> None:
    """Before its letter is sent: Postgres being down holds the batch back."""
    attempt = 0
    while True:
        try:
            originals.put(original)
            return
        except Exception as exc:  # the store's fault, never the event's: wait for it
            attempt += 1
            dependencies.pause(attempt, f"keeping a dead letter's original: {exc}")


def _failure(raw: RawEvent, kind: ErrorKind, exc: Exception, pid: str | None = None) -> Failure:
    return Failure(raw, kind, f"{type(exc).__name__}: {exc}", pid or _product_id(raw))


def _product_id(raw: RawEvent) -> str | None:
    return raw.key.decode("utf-8", "replace")[:128] if raw.key else None
