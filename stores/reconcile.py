"""`stylestream reconcile`: every Milvus collection that is written (the serving one, and one
being built; of images and of product text vectors) compared with the Postgres ledger, and
repaired to it.

Postgres is the arbiter (stores/writer.py). A product live in Postgres must be in each
collection at the same version; a product deleted or unknown there must be in none. Drift is
found by scanning both (ids and versions only), then each drifted product is repaired while
its ledger row is locked, as a writer would hold it: the row is read again under the lock and
Milvus is set to it (re-projected from the stored base embedding, or embedded by a text model's
product tower from the stored words and features: no image needed). A product
a worker changes meanwhile is therefore never set back to an older version.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

import numpy as np

from stores.base import IndexTargets, MetadataRepository, Target, VectorIndex
from stores.rows import decode_base, embedded_in, stored_index_row
from stores.text_serving import TextTargets

log = logging.getLogger(__name__)


@dataclass
class Drift:
    collection: str
    live_in_postgres: int = 0
    in_index: int = 0
    missing: list[str] = field(default_factory=list)  # live in Postgres, absent here
    stale: list[str] = field(default_factory=list)  # here at another version
    extra: list[str] = field(default_factory=list)  # here, deleted or unknown in Postgres
    repaired: int = 0

    @property
    def drifted(self) -> list[str]:
        return sorted({*self.missing, *self.stale, *self.extra})

    def summary(self, ids_shown: int = 20) -> dict[str, Any]:
        out = asdict(self)
        for name in ("missing", "stale", "extra"):
            out[f"{name}_count"] = len(out[name])
            out[name] = out[name][:ids_shown]
        return out


def _merged(pages: Iterable[dict[str, int]]) -> dict[str, int]:
    merged: dict[str, int] = {}
    for page in pages:
        merged.update(page)
    return merged


def _chunks(ids: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


Rows = Sequence[Mapping[str, Any]]


@dataclass(frozen=True)
class Written:
    """A written collection as a repair sees it: its model's vectors of stored products."""

    collection: str
    index: VectorIndex
    model_version: str
    vectors: Callable[[Rows], np.ndarray]

    @classmethod
    def of_images(cls, target: Target) -> Written:
        def vectors(rows: Rows) -> np.ndarray:
            base = [decode_base(r["base_embedding"]) for r in rows]
            return target.vectors(np.asarray(base, np.float32))

        return cls(target.collection, target.index, target.model_version, vectors)


class Reconciler:
    def __init__(
        self,
        repo: MetadataRepository,
        targets: IndexTargets,
        chunk: int = 200,
        base_model_version: str = "",
        text_targets: TextTargets | None = None,
    ) -> None:
        """``base_model_version``: repairs use only embeddings of this base model (a product
        stored under an earlier one waits for its event to be processed again); "" takes any."""
        self.repo = repo
        self.targets = targets
        self.chunk = chunk
        self.base_model_version = base_model_version
        self.text_targets = text_targets

    def written(self) -> list[Written]:
        out = [Written.of_images(t) for t in self.targets.writes()]
        for t in self.text_targets.writes() if self.text_targets is not None else ():
            out.append(Written(t.collection, t.index, t.model_version, t.vectors))
        return out

    def run(self, repair: bool = True) -> list[Drift]:
        live = _merged(self.repo.live_versions())
        drifts = []
        for target in self.written():
            drift = self._compare(target, live)
            if repair:
                for ids in _chunks(drift.drifted, self.chunk):
                    self.repo.locked_rows(ids, partial(self._repair, target, ids))
                    drift.repaired += len(ids)
                if drift.drifted:
                    target.index.flush()
            drifts.append(drift)
            log.info(
                "%s: %d drifted, %d repaired", drift.collection, len(drift.drifted), drift.repaired
            )
        return drifts

    @staticmethod
    def _compare(target: Written, live: dict[str, int]) -> Drift:
        indexed = _merged(target.index.versions())
        drift = Drift(target.collection, len(live), len(indexed))
        drift.missing = sorted(p for p in live if p not in indexed)
        drift.stale = sorted(p for p, v in indexed.items() if p in live and live[p] != v)
        drift.extra = sorted(p for p in indexed if p not in live)
        return drift

    def _repair(self, target: Written, ids: Sequence[str], rows: dict[str, dict[str, Any]]) -> None:
        """Under the ledger locks of ``ids``: the collection set to what Postgres holds."""
        present = [r for r in rows.values() if embedded_in(r, self.base_model_version)]
        gone = [pid for pid in ids if pid not in rows]
        if present:
            vectors = target.vectors(present)
            target.index.upsert(
                [
                    stored_index_row(r, r["attributes"], v, target.model_version)
                    for r, v in zip(present, vectors, strict=True)
                ]
            )
        if gone:
            target.index.delete(gone)
        unembedded = sorted(set(rows) - {r["product_id"] for r in present})
        if unembedded:  # stored before base embeddings were kept, or by an earlier base model:
            # a replay re-embeds them
            log.warning(
                "no stored embedding to repair %d products: %s", len(unembedded), unembedded[:5]
            )
