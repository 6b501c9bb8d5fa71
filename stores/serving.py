"""The serving pointer as the worker and the API see it: which collection searches go to, with
which embedding head, and where product writes go. Read from Postgres, cached for
``serving_refresh_s``; collections and heads are opened once and kept.

Why an app-kept pointer and not only a Milvus alias: each search must use the head that
matches the collection it searches, and a (head, collection) pair read together from one row
cannot disagree. The Milvus alias is set too, for other Milvus clients.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from processors.binary_codes import BinaryCoder
from processors.heads import OnnxHead
from stores.base import Projection, Target, VectorIndex
from stores.registry import CollectionRow, ServingRegistry

log = logging.getLogger(__name__)

# Opens (creating if missing) a collection of the given dimension, with the binary index of
# its coder beside it (None: float only): the Milvus adapters in production, the in-memory
# ones in unit tests.
OpenIndex = Callable[[str, int, BinaryCoder | None], VectorIndex]


@dataclass(frozen=True)
class ServingConfig:
    collection: str  # served on first start, before any re-index
    refresh_s: float = 2.0  # how often the pointer is re-read from Postgres
    base_model_version: str = ""
    base_dim: int = 0


def load_head(
    registry: ServingRegistry, model_version: str, base_version: str
) -> Projection | None:
    """A registered model's head (None: ``model_version`` is the base model itself)."""
    if model_version == base_version:
        return None
    model = registry.model(model_version)
    if model is None:
        known = [m["model_version"] for m in registry.models()] + [base_version]
        raise LookupError(
            f"unknown embedding model {model_version!r}; known: {known}. If it was the base "
            "model before STYLESTREAM_BASE_MODEL changed, re-index into the new one first "
            f"(`stylestream reindex --model {base_version}`)"
        )
    if model.base_model_version != base_version:
        raise RuntimeError(
            f"{model_version} was trained on {model.base_model_version}, but the base "
            f"embeddings here come from {base_version}"
        )
    return OnnxHead(model_version, model.artifact, model.dim, model.score_calibration)


class ServingIndex:
    """IndexTargets over the registry (stores/base.py)."""

    def __init__(
        self,
        config: ServingConfig,
        registry: ServingRegistry,
        open_index: OpenIndex,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.registry = registry
        self.open_index = open_index
        self.clock = clock
        self._lock = threading.Lock()
        self._indexes: dict[str, VectorIndex] = {}
        self._heads: dict[str, Projection | None] = {}
        self._targets: list[Target] = []
        self._read_at = float("-inf")
        try:
            self._refresh()
        except Exception as exc:  # Postgres down at start: the API still starts, not ready
            log.warning("serving pointer not read yet: %s", exc)

    def serving(self) -> Target:
        return self._current()[0]

    def writes(self) -> Sequence[Target]:
        return self._current()

    def _current(self) -> list[Target]:
        if not self._targets:
            with self._lock:
                if not self._targets:
                    self._refresh()  # raises while nothing was ever read
        if self.clock() - self._read_at >= self.config.refresh_s:
            with self._lock:
                if self.clock() - self._read_at >= self.config.refresh_s:
                    try:
                        self._refresh()
                    except Exception as exc:  # keep serving what worked: never fail a search
                        if not self._targets:
                            raise
                        log.warning("serving pointer refresh failed, keeping the last: %s", exc)
                        self._read_at = self.clock()
        return self._targets

    def _refresh(self) -> None:
        rows = self.registry.collections(("serving", "building"))
        if not rows:  # first start: the configured collection serves base embeddings
            c = self.config
            self.registry.bootstrap(c.collection, c.base_model_version, c.base_dim)
            rows = self.registry.collections(("serving", "building"))
        rows.sort(key=lambda r: r.state != "serving")  # serving first
        if not rows or rows[0].state != "serving":
            raise RuntimeError("no Milvus collection is serving: run `stylestream migrate`")
        targets = [self._target(r) for r in rows]
        if targets[0].collection != (self._targets[0].collection if self._targets else None):
            log.info("serving %s (model %s)", targets[0].collection, targets[0].model_version)
        self._targets = targets
        self._read_at = self.clock()

    def _target(self, row: CollectionRow) -> Target:
        key = f"{row.collection}/{row.coder_version or ''}"  # a coder set later: reopened
        index = self._indexes.get(key)
        if index is None:
            coder = self.registry.coder(row.coder_version) if row.coder_version else None
            index = self.open_index(row.collection, row.dim, coder)
            self._indexes[key] = index
        return Target(index, row.model_version, self._head(row.model_version), row.collection)

    def _head(self, model_version: str) -> Projection | None:
        if model_version not in self._heads:
            self._heads[model_version] = load_head(
                self.registry, model_version, self.config.base_model_version
            )
        return self._heads[model_version]

    def close(self) -> None:
        for index in self._indexes.values():
            index.close()
        self._indexes.clear()
