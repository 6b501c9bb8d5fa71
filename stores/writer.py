"""The idempotent write protocol shared by every writer of products.

Order matters for crash safety: (1) read the ledger, drop stale versions; (2) write Milvus
(upsert by product id: repeatable); (3) commit Postgres, ledger included, in one transaction.
A crash between (2) and (3) leaves the ledger behind, so the redelivered event is redone;
a crash after (3) makes the redelivery stale, so it changes nothing.

Step (2) writes every target collection: the serving one and, during a re-index, the one being
built, each with its own model's projection of the base embedding.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from processors.products import BatchResult
from stores.base import IndexTargets, LedgerEntry, MetadataRepository, VectorIndex
from stores.rows import index_row, postgres_row


@dataclass(frozen=True)
class WriteOutcome:
    indexed: list[str]
    deleted: list[str]
    stale: int


def _fresh_delete(entry: LedgerEntry | None, version: int) -> bool:
    if entry is None:
        return True
    return version > entry.version or (version == entry.version and not entry.deleted)


class ProductWriter:
    def __init__(
        self, targets: IndexTargets, repo: MetadataRepository, flush_rows: int = 5000
    ) -> None:
        self.targets = targets
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
        ids = [u.product_id for u in batch.upserts] + [d.product_id for d in batch.deletes]
        ledger = self.repo.ledger(ids)
        upserts = [
            u
            for u in batch.upserts
            if (e := ledger.get(u.product_id)) is None or u.version > e.version
        ]
        deletes = [d for d in batch.deletes if _fresh_delete(ledger.get(d.product_id), d.version)]
        base = np.asarray([u.embedding for u in upserts], dtype=np.float32)
        for target in self.targets.writes() if upserts or deletes else ():
            if upserts:
                vectors = target.vectors(base)
                version = target.model_version if target.head is not None else None
                target.index.upsert(
                    [index_row(u, v, version) for u, v in zip(upserts, vectors, strict=True)]
                )
            if deletes:
                target.index.delete([d.product_id for d in deletes])
            self._written[id(target.index)] = target.index
        now = datetime.now(UTC)
        indexed, deleted = self.repo.apply(
            [postgres_row(u, now) for u in upserts],
            [(d.product_id, d.version) for d in deletes],
        )
        stale = len(batch.upserts) + len(batch.deletes) - len(upserts) - len(deletes)
        self.unflushed += len(upserts) + len(deletes)
        if self.unflushed >= self.flush_rows:
            self.flush()
        return WriteOutcome(indexed=indexed, deleted=deleted, stale=stale)
