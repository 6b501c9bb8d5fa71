"""One batch of outfit records: read, write, dead-letter. Kafka-free, as streams/handler.py is
for products, and with the same rules: a record's own fault (bad JSON, schema, key) is
dead-lettered with its reason; a store's fault (an error that says so, or a store failing its
probe) holds the batch back until the store answers, then the same batch is retried; an error
of a healthy store is narrowed down by halves to the outfit it refuses alone, which is
dead-lettered after a few tries while its neighbours are written."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from processors.outfits import OutfitBatch, read_outfits
from processors.products import Failure, RawEvent
from schemas.dead_letter import ErrorKind
from stores.dead_letters import OriginalStore
from stores.faults import transient
from stores.outfits import OutfitRepository
from streams.faults import Dependencies
from streams.handler import HandledBatch, dead_letter, keep_original
from streams.metrics import WorkerMetrics

log = logging.getLogger(__name__)


class OutfitHandler:
    def __init__(
        self,
        store: OutfitRepository,
        metrics: WorkerMetrics,
        dependencies: Dependencies,
        *,
        retries: int = 3,
        alike_retries: int = 8,
        originals: OriginalStore | None = None,
        inline_bytes: int = 256 * 1024,
    ) -> None:
        """``originals``: where a dead letter's original over ``inline_bytes`` is kept (so the
        letter fits a Kafka message); None carries every original inline."""
        self.store = store
        self.metrics = metrics
        self.dependencies = dependencies
        self.retries = retries
        self.alike_retries = alike_retries
        self.originals = originals
        self.inline_bytes = inline_bytes if originals is not None else None

    def handle(self, raws: Sequence[RawEvent]) -> HandledBatch:
        """Never raises; returns once every record is applied, stale or dead-lettered for a
        fault of its own."""
        heartbeat = self.dependencies.heartbeat
        heartbeat.busy = True
        try:
            batch = read_outfits(raws)
            applied, deleted, failures = self._whole(batch)
        finally:
            heartbeat.busy = False
            heartbeat.beat()
        failures = batch.failures + failures
        written = len(applied) + len(deleted)
        counts = {
            "applied": len(applied),
            "deleted": len(deleted),
            "stale": len(raws) - written - len(failures),
            "dead_lettered": len(failures),
        }
        for outcome, n in counts.items():
            self.metrics.outfits.labels(outcome=outcome).inc(n)
        letters = [dead_letter(f, self.inline_bytes) for f in failures]
        for f, letter in zip(failures, letters, strict=True):
            if letter.original_stored and self.originals is not None:
                keep_original(self.originals, self.dependencies, f.raw.value)
            self.metrics.dead_lettered.labels(error_kind=f.kind.value).inc()
        return HandledBatch(None, letters)

    def _whole(self, batch: OutfitBatch) -> tuple[list[str], list[str], list[Failure]]:
        """The batch written, retried whole while a healthy store refuses every one of its
        outfits with one error (a fault of the store, not of the outfits: a migration, a
        constraint), at most ``alike_retries`` times; then they are dead-lettered (replayable
        with `stylestream dlq replay`), the stalls counted meanwhile."""
        attempt = 0
        while True:
            applied, deleted, failures = self._write(batch)
            messages = {f.message for f in failures}
            alike = len(batch.events) > 1 and not applied and not deleted and len(messages) == 1
            if not alike or attempt >= self.alike_retries:
                return applied, deleted, failures
            attempt += 1
            self.dependencies.metrics.stalls.inc()
            log.error("every outfit of a batch refused alike: %s", next(iter(messages)))
            self.dependencies.pause(attempt, f"outfits refused alike: {next(iter(messages))}")

    def _write(self, batch: OutfitBatch) -> tuple[list[str], list[str], list[Failure]]:
        if not batch.events:
            return [], [], []
        attempt = 0
        while True:
            try:
                applied, deleted = self.store.apply(batch.events)
                return applied, deleted, []
            except Exception as exc:
                attempt += 1
                if transient(exc) or self.dependencies.down():
                    self.dependencies.pause(attempt, f"outfits: {type(exc).__name__}: {exc}")
                    continue
                halves = batch.halves()
                if halves is not None:
                    parts = [self._write(h) for h in halves]
                    return (
                        [i for p in parts for i in p[0]],
                        [i for p in parts for i in p[1]],
                        [f for p in parts for f in p[2]],
                    )
                if attempt < self.retries:
                    self.dependencies.pause(attempt, f"writing one outfit: {exc}")
                    continue
                log.error("a healthy store refuses one outfit, dead-lettered: %r", exc)
                message = f"{type(exc).__name__}: {exc}"
                return (
                    [],
                    [],
                    [
                        Failure(raw, ErrorKind.STORE_ERROR, message)
                        for e in batch.events
                        for raw in batch.sources.get(e.outfit_id, [])
                    ],
                )
