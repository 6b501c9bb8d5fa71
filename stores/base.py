"""The store interfaces the workers, the search service and the CLI depend on, and the typed
rows that cross them (an adapter is the only place a backend's field names are spelled)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import numpy as np

from processors.text import Term
from stores.filters import Effort, Filters


@dataclass(frozen=True)
class IndexRow:
    """One product as a vector index holds it (schemas/milvus.py)."""

    product_id: str
    version: int = 0
    category: str = ""
    price: float = 0.0
    primary_colour: str = ""
    model_version: str = ""
    colour_fractions: Mapping[str, float] = field(default_factory=dict)
    colour_vector: Sequence[float] = ()
    predicted_category: str = ""
    attributes: tuple[str, ...] = ()
    attribute_scores: Mapping[str, float] = field(default_factory=dict)
    embedding: np.ndarray | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Hit:
    """A search result: the row (the fields asked for) and its similarity score."""

    row: IndexRow
    score: float

    @property
    def product_id(self) -> str:
        return self.row.product_id

    @property
    def colour_fractions(self) -> Mapping[str, float]:
        return self.row.colour_fractions

    @property
    def attribute_scores(self) -> Mapping[str, float]:
        return self.row.attribute_scores

    def rescored(self, score: float) -> Hit:
        return Hit(self.row, score)


# Fields a search may be narrowed to (``fields=``); product_id and the score always come back.
ROW_FIELDS = tuple(f for f in IndexRow.__dataclass_fields__ if f not in ("product_id", "embedding"))
# Fields kept together: an index stores an item's colour shares and vector as one value.
FIELD_GROUPS = (("colour_fractions", "colour_vector"),)


def narrow_fields(fields: Sequence[str] | None) -> tuple[str, ...]:
    """The row fields a search returns for ``fields`` (None: all of them), the same on every
    backend; an unknown name is refused."""
    if fields is None:
        return ROW_FIELDS
    unknown = set(fields) - set(ROW_FIELDS) - {"product_id"}
    if unknown:
        raise ValueError(f"unknown index fields {sorted(unknown)}")
    wanted = set(fields)
    for group in FIELD_GROUPS:
        if wanted & set(group):
            wanted |= set(group)
    return tuple(f for f in ROW_FIELDS if f in wanted)


class VectorIndex(Protocol):
    """Vectors plus filterable scalars, keyed by product id (upsert replaces)."""

    def ensure(self) -> None: ...

    def upsert(self, rows: Sequence[IndexRow]) -> None: ...

    def delete(self, product_ids: Sequence[str]) -> None: ...

    def search(
        self,
        vectors: np.ndarray,
        k: int,
        filters: Filters | None = None,
        offset: int = 0,
        fields: Sequence[str] | None = None,
        effort: Effort | None = None,
    ) -> list[list[Hit]]:
        """Top ``k`` per query vector by cosine similarity, best first; ``fields``: the row
        fields to return (default: all of ``ROW_FIELDS``)."""
        ...

    def get(
        self, product_ids: Sequence[str], with_vectors: bool = False
    ) -> dict[str, IndexRow]: ...

    def count(self) -> int: ...

    def versions(self, batch: int = 5000) -> Iterator[dict[str, int]]:
        """Every row's product id and version, a batch at a time (the reconcile's scan)."""
        ...

    def flush(self) -> None: ...

    def set_alias(self, alias: str) -> None:
        """Point ``alias`` at this collection (for other clients of the backend)."""
        ...

    def drop(self) -> None: ...

    def ping(self) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class LedgerEntry:
    version: int
    deleted: bool


@dataclass(frozen=True)
class TextMatch:
    """A product a text query matched: its score (the sum over terms of weight x the term's
    match) and each term's match, in the query's order. Scores compare within a backend only:
    Postgres ranks by its full-text rank, the in-memory twin by the share of words matched."""

    product_id: str
    score: float
    terms: tuple[float, ...]


class StoreTimeout(TimeoutError):
    """A store query ran past its time limit: the caller answers busy, not an error."""


Applied = Callable[[list[str], list[str]], None]
Locked = Callable[[dict[str, dict[str, Any]]], None]


class MetadataRepository(Protocol):
    """Product metadata plus the version ledger that makes writes idempotent; rows are the
    shapes of stores/rows.py."""

    def ledger(self, product_ids: Sequence[str]) -> dict[str, LedgerEntry]: ...

    def apply(
        self,
        upserts: Sequence[Mapping[str, Any]],
        deletes: Sequence[tuple[str, int]],
        then: Applied | None = None,
    ) -> tuple[list[str], list[str]]:
        """Apply newer versions only, atomically. Returns (upserted ids, deleted ids).

        ``then(upserted, deleted)`` runs before the commit, while the ledger rows of these
        products stay locked: the vector indexes are written there, so two writers of one
        product change both stores in version order; if it raises, nothing is committed."""
        ...

    def get_product(self, product_id: str) -> dict[str, Any] | None: ...

    def get_products(self, product_ids: Sequence[str]) -> dict[str, dict[str, Any]]: ...

    def get_summaries(self, product_ids: Sequence[str]) -> dict[str, dict[str, Any]]: ...

    def get_thumbnail(self, product_id: str) -> bytes | None: ...

    def base_embeddings(self, product_ids: Sequence[str]) -> dict[str, tuple[str, bytes]]:
        """Each product's stored base embedding and its model version (those with one): what
        a modifier query reranks candidates on, without the rows' heavy columns."""
        ...

    def get_attributes(self, product_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]: ...

    def products_with(self, attribute_key: str, limit: int = 100) -> list[str]: ...

    def taxonomy(self) -> list[dict[str, Any]]:
        """The attribute vocabulary, each with how many products carry it."""
        ...

    def categories(self) -> list[str]: ...

    def text_search(
        self,
        terms: Sequence[Term],
        limit: int,
        filters: Filters | None = None,
        offset: int = 0,
    ) -> list[TextMatch]:
        """Products whose words (``search_text``) match a word of a positive term and none of
        an excluding one, under ``filters`` (as a vector index applies them), best first, ties
        in product id order."""
        ...

    def text_excluded(self, product_ids: Sequence[str], terms: Sequence[Term]) -> set[str]:
        """Those of ``product_ids`` an excluding term of ``terms`` refuses (as ``text_search``
        would): what keeps an excluded product out of dense text results."""
        ...

    def count_products(self) -> int: ...

    def product_ids(self, limit: int) -> list[str]: ...

    def live_versions(self, batch: int = 5000) -> Iterator[dict[str, int]]:
        """Every live product's id and version, a batch at a time, in id order."""
        ...

    def locked_rows(self, product_ids: Sequence[str], then: Locked) -> None:
        """``then(rows)`` with the live products among ``product_ids`` (rows as
        ``product_batches`` gives them, plus their ``attributes``), read while their ledger
        rows are locked, as a writer holds them (stores/writer.py): nothing changes them until
        ``then`` returns. ``then`` must not call the repository."""
        ...

    def product_batches(self, batch: int = 500) -> Iterator[list[dict[str, Any]]]:
        """Every product with what its index row needs, in product id order."""
        ...

    def changed_since(self, since: datetime) -> tuple[dict[str, tuple[datetime, bool]], datetime]:
        """Products written since ``since``: id -> (ledger time, deleted); and the store's now."""
        ...

    def now(self) -> datetime: ...

    def base_versions(self) -> list[str]: ...

    def ping(self) -> None: ...

    def close(self) -> None: ...


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
