"""One batch of product records: process, write, dead-letter. Kafka-free so it runs in tests
without a broker; the Faust agent only feeds it and sends what it returns."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from processors.products import BatchResult, Failure, ProductProcessor, RawEvent
from schemas.dead_letter import DeadLetter, ErrorKind
from stores.writer import ProductWriter, WriteOutcome
from streams.metrics import WorkerMetrics

log = logging.getLogger(__name__)


@dataclass
class HandledBatch:
    outcome: WriteOutcome | None
    dead_letters: list[DeadLetter] = field(default_factory=list)


def _dead_letter(f: Failure) -> DeadLetter:
    return DeadLetter.wrap(
        f.raw.value,
        topic=f.raw.topic,
        partition=f.raw.partition,
        offset=f.raw.offset,
        key=f.raw.key,
        kind=f.kind,
        message=f.message,
        product_id=f.product_id,
    )


def _all_failed(raws: Sequence[RawEvent], kind: ErrorKind, message: str) -> list[Failure]:
    return [Failure(raw, kind, message) for raw in raws]


class BatchHandler:
    def __init__(
        self,
        processor: ProductProcessor,
        writer: ProductWriter,
        metrics: WorkerMetrics,
        *,
        retries: int = 3,
        backoff_s: float = 0.5,
    ) -> None:
        self.processor = processor
        self.writer = writer
        self.metrics = metrics
        self.retries = retries
        self.backoff_s = backoff_s

    def flush(self) -> bool:
        """Seal recent index writes (called on a timer and at shutdown); never raises."""
        try:
            return self.writer.flush()
        except Exception as exc:  # the next timer tick retries; searches still see the rows
            log.warning("index flush failed: %s", exc)
            return False

    def handle(self, raws: Sequence[RawEvent]) -> HandledBatch:
        """Never raises: whatever cannot be applied comes back as dead letters."""
        started = time.perf_counter()
        self.metrics.consumed.inc(len(raws))
        try:
            result = self.processor.process(raws)
        except Exception as exc:  # a bug must not stop the worker: the batch is kept in the DLQ
            log.exception("processing failed for a batch of %d", len(raws))
            failures = _all_failed(raws, ErrorKind.PROCESSING_ERROR, f"{type(exc).__name__}: {exc}")
            return self._finish(None, failures, started)
        self.metrics.stale.inc(result.superseded)
        outcome, store_failures = self._write(result)
        if outcome is not None:
            self._observe_lag(result, outcome)
        return self._finish(outcome, result.failures + store_failures, started)

    def _observe_lag(self, result: BatchResult, outcome: WriteOutcome) -> None:
        indexed = set(outcome.indexed)
        now = datetime.now(UTC)
        for u in result.upserts:
            if u.product_id in indexed:
                sent = u.event.produced_at or u.event.event_time
                self.metrics.lag_seconds.observe(max(0.0, (now - sent).total_seconds()))

    def _write(self, result: BatchResult) -> tuple[WriteOutcome | None, list[Failure]]:
        if not result.upserts and not result.deletes:
            return None, []
        for attempt in range(1, self.retries + 1):
            try:
                return self.writer.write(result), []
            except Exception as exc:
                log.warning("store write failed (attempt %d/%d): %s", attempt, self.retries, exc)
                if attempt == self.retries:
                    message = f"store write failed after {self.retries} attempts: {exc}"
                    ids = [u.product_id for u in result.upserts]
                    ids += [d.product_id for d in result.deletes]
                    return None, [
                        Failure(raw, ErrorKind.STORE_ERROR, message, pid)
                        for pid in ids
                        for raw in result.sources.get(pid, [])
                    ]
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
        return None, []

    def _finish(
        self, outcome: WriteOutcome | None, failures: list[Failure], started: float
    ) -> HandledBatch:
        if outcome is not None:
            self.metrics.indexed.inc(len(outcome.indexed))
            self.metrics.deleted.inc(len(outcome.deleted))
            self.metrics.stale.inc(outcome.stale)
        for f in failures:
            self.metrics.dead_lettered.labels(error_kind=f.kind.value).inc()
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        return HandledBatch(outcome, [_dead_letter(f) for f in failures])
