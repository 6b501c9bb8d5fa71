"""The store interfaces the workers, the CLI and the API depend on."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


@dataclass(frozen=True)
class Hit:
    product_id: str
    score: float
    fields: Mapping[str, Any]


class VectorIndex(Protocol):
    """Vectors plus filterable scalars, keyed by product id (upsert replaces)."""

    def ensure(self) -> None: ...

    def upsert(self, rows: Sequence[Mapping[str, Any]]) -> None: ...

    def delete(self, product_ids: Sequence[str]) -> None: ...

    def search(
        self,
        vectors: np.ndarray,
        k: int,
        filter_expr: str = "",
        offset: int = 0,
        fields: Sequence[str] | None = None,
    ) -> list[list[Hit]]: ...

    def get(
        self, product_ids: Sequence[str], with_vectors: bool = False
    ) -> dict[str, dict[str, Any]]: ...

    def count(self) -> int: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class LedgerEntry:
    version: int
    deleted: bool


class MetadataRepository(Protocol):
    """Product metadata plus the version ledger that makes writes idempotent."""

    def ledger(self, product_ids: Sequence[str]) -> dict[str, LedgerEntry]: ...

    def apply(
        self,
        upserts: Sequence[Mapping[str, Any]],
        deletes: Sequence[tuple[str, int]],
    ) -> tuple[list[str], list[str]]: ...

    def get_product(self, product_id: str) -> dict[str, Any] | None: ...

    def get_products(self, product_ids: Sequence[str]) -> dict[str, dict[str, Any]]: ...

    def get_summaries(self, product_ids: Sequence[str]) -> dict[str, dict[str, Any]]: ...

    def get_thumbnail(self, product_id: str) -> bytes | None: ...

    def get_attributes(self, product_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]: ...

    def taxonomy(self) -> list[dict[str, Any]]: ...

    def categories(self) -> list[str]: ...

    def count_products(self) -> int: ...

    def ping(self) -> None: ...


class Projection(Protocol):
    """An embedding head: base embeddings in, the served space out (L2-normalised)."""

    @property
    def model_version(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def project(self, base: np.ndarray) -> np.ndarray: ...

    def score(self, cosine: float) -> float:
        """A cosine in this space on the base model's scale (the rerank's weights are)."""
        ...


@dataclass(frozen=True)
class Target:
    """A collection and the model whose vectors it holds. ``head`` None: the base embedding."""

    index: VectorIndex
    model_version: str
    head: Projection | None = None
    collection: str = ""

    def vectors(self, base: np.ndarray) -> np.ndarray:
        return base if self.head is None or len(base) == 0 else self.head.project(base)

    def search(
        self,
        base: np.ndarray,
        k: int,
        filter_expr: str = "",
        fields: Sequence[str] | None = None,
        projected: bool = False,
    ) -> list[list[Hit]]:
        """Search with base embeddings (or vectors of this collection: ``projected``); scores
        come back on the base model's scale, so the rank weights mean the same whichever
        model serves."""
        vectors = base if projected else self.vectors(base)
        hits = self.index.search(vectors, k, filter_expr, fields=fields)
        head = self.head
        if head is None:
            return hits
        return [[Hit(h.product_id, head.score(h.score), h.fields) for h in row] for row in hits]


class IndexTargets(Protocol):
    """Where searches go (``serving``) and where product writes go (``writes``: the serving
    collection first, then any collection being built by a re-index)."""

    def serving(self) -> Target: ...

    def writes(self) -> Sequence[Target]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class FixedTarget:
    """One collection of base embeddings and no registry: tests and one-off tools."""

    index: VectorIndex
    model_version: str = ""

    def serving(self) -> Target:
        return Target(self.index, self.model_version)

    def writes(self) -> Sequence[Target]:
        return [self.serving()]

    def close(self) -> None:
        self.index.close()
