"""The text collections' serving pointer, as the worker and the API see it: which collection of
product text vectors answers text queries, with which text model, and where product writes go.
Read from Postgres (``text_collections``), cached for ``refresh_s``; collections and models are
opened once and kept.

Unlike images, nothing serves at first: text vectors exist only after the first
`stylestream reindex --text`, and until then text queries are answered by words alone.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from processors.text_encoder import TextEncoder
from stores.base import VectorIndex
from stores.registry import CollectionRow, ServingRegistry
from stores.rows import tower_inputs
from stores.serving import OpenIndex

log = logging.getLogger(__name__)


class TextTowers(Protocol):
    """A text model as served (processors/text_encoder.TextEncoder; tests use small twins)."""

    @property
    def model_version(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def products(self, texts: Sequence[str], dense: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class TextTarget:
    """A collection of product text vectors and the text model whose vectors it holds."""

    index: VectorIndex
    encoder: TextTowers
    collection: str = ""

    @property
    def model_version(self) -> str:
        return self.encoder.model_version

    def vectors(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Product vectors of ``rows`` (stores/rows.tower_inputs)."""
        return TextVectors(self.encoder).vectors(rows)


@dataclass(frozen=True)
class TextVectors:
    """A text model as a re-index's vectoriser (stores/reindex.Vectoriser)."""

    encoder: TextTowers

    @property
    def dim(self) -> int:
        return self.encoder.dim

    def vectors(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        texts, dense = tower_inputs(rows)
        return self.encoder.products(texts, dense)


def load_text_model(
    registry: ServingRegistry, model_version: str, base_version: str, threads: int = 0
) -> TextEncoder:
    """A registered text model, refused when its product tower reads another base model's
    image embeddings than the ones stored here."""
    model = registry.text_model(model_version)
    if model is None:
        known = [m["model_version"] for m in registry.text_models()]
        raise LookupError(f"unknown text model {model_version!r}; known: {known}")
    if base_version and model.base_model_version != base_version:
        raise RuntimeError(
            f"{model_version} reads image embeddings of {model.base_model_version}, but the "
            f"ones stored here come from {base_version}: train a text model on them first"
        )
    return TextEncoder(model.query_artifact, model.product_artifact, model_version, threads)


@dataclass(frozen=True)
class TextServingConfig:
    base_model_version: str
    refresh_s: float = 2.0
    threads: int = 0  # ONNX Runtime threads per text model (0: its default)


class TextTargets(Protocol):
    """Where text queries go (``serving``: None while no text collection serves) and where
    product writes go (``writes``: the serving collection first, then any being built)."""

    def serving(self) -> TextTarget | None: ...

    def writes(self) -> Sequence[TextTarget]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class FixedTextTarget:
    """One text collection and no registry: tests and one-off tools."""

    target: TextTarget

    def serving(self) -> TextTarget:
        return self.target

    def writes(self) -> Sequence[TextTarget]:
        return [self.target]

    def close(self) -> None:
        self.target.index.close()


class TextServing:
    """The text pointer over the registry (``pointer`` = text_collections)."""

    def __init__(
        self,
        config: TextServingConfig,
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
        self._encoders: dict[str, TextTowers] = {}
        self._targets: list[TextTarget] = []
        self._serving = False
        self._read_at = float("-inf")

    def serving(self) -> TextTarget | None:
        """The serving collection, or None while no text collection serves."""
        targets = self._current()
        return targets[0] if targets and self._serving else None

    def writes(self) -> Sequence[TextTarget]:
        """Where product writes go: the serving collection first, then any being built."""
        return self._current()

    def _current(self) -> list[TextTarget]:
        if self.clock() - self._read_at >= self.config.refresh_s:
            with self._lock:
                if self.clock() - self._read_at >= self.config.refresh_s:
                    self._refresh()
        return self._targets

    def _refresh(self) -> None:
        """Raises while the pointer was never read (a write must not skip a collection being
        built); later failures keep the last pointer for one more period."""
        try:
            rows = self.registry.collections(("serving", "building"))
        except Exception as exc:
            if self._read_at == float("-inf"):
                raise
            log.warning("text pointer refresh failed, keeping the last: %s", exc)
            self._read_at = self.clock()
            return
        rows.sort(key=lambda r: r.state != "serving")
        self._targets = [self._target(r) for r in rows]
        self._serving = bool(rows) and rows[0].state == "serving"
        self._read_at = self.clock()

    def _target(self, row: CollectionRow) -> TextTarget:
        index = self._indexes.get(row.collection)
        if index is None:
            index = self.open_index(row.collection, row.dim, None)
            self._indexes[row.collection] = index
        encoder = self._encoders.get(row.model_version)
        if encoder is None:
            c = self.config
            encoder = load_text_model(
                self.registry, row.model_version, c.base_model_version, c.threads
            )
            self._encoders[row.model_version] = encoder
        return TextTarget(index, encoder, row.collection)

    def close(self) -> None:
        for index in self._indexes.values():
            index.close()
        self._indexes.clear()
