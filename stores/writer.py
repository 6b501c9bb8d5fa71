"""The idempotent write protocol shared by every writer of products: the Postgres ledger is
the arbiter of versions for both stores.

In one Postgres transaction: (1) the ledger takes the newer versions and locks every product of
the batch; (2) Postgres gets their rows; (3) Milvus gets the same products (upsert or delete by
product id: repeatable), still under the locks; (4) commit. A second writer of one product (a
rebalance, a producer keyed by something else) waits for the commit, then sees the version it
must beat, so Milvus and Postgres change in the same order. A failure before (4) commits
nothing, and the redelivered event redoes (3); a crash after (4) makes the redelivery stale.

Step (3) writes every target collection: the serving one and, during a re-index, the one being
built, each with its own model's projection of the base embedding; and likewise every collection
of product text vectors (stores/text_serving.py), each with its text model's product tower.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from processors.products import BatchResult, IndexedProduct
from stores.base import IndexTargets, MetadataRepository, VectorIndex
from stores.rows import index_row, postgres_row
from stores.text_serving import TextTargets


@dataclass(frozen=True)
class WriteOutcome:
    indexed: list[str]
    deleted: list[str]
    stale: int


class ProductWriter:
    def __init__(
        self,
        targets: IndexTargets,
        repo: MetadataRepository,
        flush_rows: int = 5000,
        text_targets: TextTargets | None = None,
    ) -> None:
        self.targets = targets
        self.text_targets = text_targets
        self.repo = repo
        self.flush_rows = flush_rows
        self.unflushed = 0  # rows written to the indexes since their last flush
        self._written: dict[int, VectorIndex] = {}

    def flush(self) -> bool:
        """Seal the indexes' recent writes, if any. Returns whether it flushed."""
        if not self.unflushed:
            return False
        for index in self._written.values():
            index.flush()
        self._written.clear()
        self.unflushed = 0
        return True

    def write(self, batch: BatchResult) -> WriteOutcome:
        by_id = {u.product_id: u for u in batch.upserts}
        if len(by_id) < len(batch.upserts):
            raise ValueError("a batch carries one version per product")
        now = datetime.now(UTC)
        rows = {u.product_id: postgres_row(u, now) for u in batch.upserts}

        def to_indexes(upserted: list[str], deleted: list[str]) -> None:
            if not upserted and not deleted:
                return
            fresh = [by_id[pid] for pid in upserted]
            base = np.asarray([u.embedding for u in fresh], dtype=np.float32)
            for target in self.targets.writes():
                vectors = target.vectors(base) if fresh else base
                version = target.model_version if target.head is not None else None
                self._to(target.index, fresh, vectors, version, deleted)
            for text in self.text_targets.writes() if self.text_targets is not None else ():
                vectors = text.vectors([rows[pid] for pid in upserted]) if fresh else base
                self._to(text.index, fresh, vectors, text.model_version, deleted)

        indexed, deleted = self.repo.apply(
            list(rows.values()),
            [(d.product_id, d.version) for d in batch.deletes],
            then=to_indexes,
        )
        stale = len(batch.upserts) + len(batch.deletes) - len(indexed) - len(deleted)
        self.unflushed += len(indexed) + len(deleted)
        if self.unflushed >= self.flush_rows:
            self.flush()
        return WriteOutcome(indexed=indexed, deleted=deleted, stale=stale)

    def _to(
        self,
        index: VectorIndex,
        fresh: list[IndexedProduct],
        vectors: np.ndarray,
        version: str | None,
        deleted: list[str],
    ) -> None:
        if fresh:
            index.upsert([index_row(u, v, version) for u, v in zip(fresh, vectors, strict=True)])
        if deleted:
            index.delete(deleted)
        self._written[id(index)] = index
