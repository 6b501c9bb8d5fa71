"""In-memory twins of the vector index and the metadata repository: the same contract as the
Milvus and Postgres adapters (proved by tests/contract), for unit tests of the handler, the
writer, the search service and the miner that need no service at all. Thread-safe, exact
(brute-force) search, and the same neutral filters, translated into Python predicates."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import numpy as np

from processors.text import Term, lexemes
from schemas.attributes import taxonomy_rows
from schemas.tables import products
from stores.base import Applied, Hit, IndexRow, LedgerEntry, Locked, TextMatch, narrow_fields
from stores.filters import Effort, Filters
from stores.rows import INDEX_COLUMNS

# The columns a result list shows (PostgresRepository.get_summaries).
SUMMARY_COLUMNS = ("product_id", "title", "category", "price", "currency")
PRODUCT_COLUMNS = tuple(c.name for c in products.columns if c.computed is None)
REQUIRED_COLUMNS = tuple(
    c.name
    for c in products.columns
    if not c.nullable and c.default is None and c.server_default is None
)


def _check_row(row: Mapping[str, Any]) -> None:
    """What Postgres refuses, refused here too: unknown columns and missing required ones."""
    unknown = set(row) - set(PRODUCT_COLUMNS) - {"attributes"}
    missing = [c for c in REQUIRED_COLUMNS if row.get(c) is None]
    if unknown or missing:
        raise ValueError(f"product row: unknown columns {sorted(unknown)}, missing {missing}")


SEEDED_TAXONOMY = tuple(taxonomy_rows())  # as migration 0003 seeds it into Postgres


def matches(filters: Filters | None, row: IndexRow) -> bool:
    """The neutral filters as a predicate on one row (what expression() means in Milvus)."""
    if filters is None:
        return True
    f = filters
    checks = (
        f.category is None or row.category == f.category,
        f.colour is None or row.primary_colour == f.colour,
        f.min_price is None or row.price >= f.min_price,
        f.max_price is None or row.price <= f.max_price,
        f.version is None or row.version == f.version,
        all(set(group) & set(row.attributes) for group in f.attribute_groups()),
    )
    return all(checks)


@lru_cache(maxsize=100_000)
def _analysed(text: str) -> frozenset[str]:
    """A product text's lexemes, analysed once per distinct text (bounded)."""
    return frozenset(lexemes(text))


def _filter_row(row: Mapping[str, Any], attributes: tuple[str, ...]) -> IndexRow:
    """The fields of a product row the neutral filters read."""
    return IndexRow(
        product_id=row["product_id"],
        version=row["version"],
        category=row["category"],
        price=float(row["price"]),
        primary_colour=row["primary_colour"],
        attributes=attributes,
    )


def _copy(row: IndexRow, fields: Sequence[str] | None = None, vector: bool = False) -> IndexRow:
    """What an index returns: a copy (callers cannot change the index through it) with only
    the fields asked for, the others at their defaults."""
    kept = {f: copy.deepcopy(getattr(row, f)) for f in narrow_fields(fields)}
    embedding = None if not vector or row.embedding is None else row.embedding.copy()
    return IndexRow(row.product_id, embedding=embedding, **kept)


class MemoryVectorIndex:
    """A collection in a dict: cosine similarity, exact."""

    def __init__(self, collection: str = "memory", dim: int | None = None) -> None:
        self.collection = collection
        self.dim = dim
        self.aliases: set[str] = set()
        self._rows: dict[str, IndexRow] = {}
        self._lock = threading.Lock()

    def ensure(self) -> None:
        """Nothing to create: the dict exists."""

    def upsert(self, rows: Sequence[IndexRow]) -> None:
        for row in rows:
            if row.embedding is None:
                raise ValueError(f"index row {row.product_id!r} has no embedding")
            if self.dim is not None and len(row.embedding) != self.dim:
                raise ValueError(f"vector of {len(row.embedding)} dims for a {self.dim}-d index")
        with self._lock:
            for row in rows:
                self._rows[row.product_id] = replace(
                    _copy(row, vector=True),
                    # stored as Milvus stores them: a FLOAT (float32) price, float32 vectors
                    price=float(np.float32(row.price)),
                    embedding=np.asarray(row.embedding, dtype=np.float32).copy(),
                )

    def delete(self, product_ids: Sequence[str]) -> None:
        with self._lock:
            for pid in product_ids:
                self._rows.pop(pid, None)

    def search(
        self,
        vectors: np.ndarray,
        k: int,
        filters: Filters | None = None,
        offset: int = 0,
        fields: Sequence[str] | None = None,
        effort: Effort | None = None,  # exact: nothing to trade
    ) -> list[list[Hit]]:
        with self._lock:
            rows = [r for r in self._rows.values() if matches(filters, r)]
        if len(vectors) == 0:
            return []
        if not rows:
            return [[] for _ in vectors]
        gallery = np.asarray([r.embedding for r in rows], dtype=np.float32)
        gallery /= np.maximum(np.linalg.norm(gallery, axis=1, keepdims=True), 1e-12)
        queries = np.asarray(vectors, dtype=np.float32)
        queries = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
        out = []
        for sims in queries @ gallery.T:
            order = np.argsort(-sims, kind="stable")[offset : offset + k]
            out.append([Hit(_copy(rows[j], fields), float(sims[j])) for j in order])
        return out

    def get(self, product_ids: Sequence[str], with_vectors: bool = False) -> dict[str, IndexRow]:
        with self._lock:
            found = {pid: self._rows[pid] for pid in product_ids if pid in self._rows}
        return {pid: _copy(r, vector=with_vectors) for pid, r in found.items()}

    def count(self) -> int:
        with self._lock:
            return len(self._rows)

    def versions(self, batch: int = 5000) -> Iterator[dict[str, int]]:
        with self._lock:
            found = sorted((pid, row.version) for pid, row in self._rows.items())
        for start in range(0, len(found), batch):
            yield dict(found[start : start + batch])

    def flush(self) -> None:
        """Writes are visible at once."""

    def set_alias(self, alias: str) -> None:
        self.aliases.add(alias)

    def drop(self) -> None:
        with self._lock:
            self._rows.clear()

    def ping(self) -> None:
        """Always reachable."""

    def close(self) -> None:
        """Nothing to release."""


class MemoryRepository:
    """Products, their attributes and the version ledger in dicts; ``apply`` is atomic under
    one lock, as the Postgres adapter's is one transaction."""

    def __init__(self, taxonomy: Sequence[Mapping[str, Any]] = SEEDED_TAXONOMY) -> None:
        self._products: dict[str, dict[str, Any]] = {}
        self._attributes: dict[str, list[dict[str, Any]]] = {}
        self._ledger: dict[str, tuple[LedgerEntry, datetime]] = {}
        self._taxonomy = [dict(t) for t in taxonomy]
        self._lock = threading.Lock()

    def ledger(self, product_ids: Sequence[str]) -> dict[str, LedgerEntry]:
        with self._lock:
            return {p: self._ledger[p][0] for p in product_ids if p in self._ledger}

    def apply(
        self,
        upserts: Sequence[Mapping[str, Any]],
        deletes: Sequence[tuple[str, int]],
        then: Applied | None = None,
    ) -> tuple[list[str], list[str]]:
        """Decides under the lock, runs ``then`` under it, and changes nothing if it raises."""
        for row in upserts:
            _check_row(row)
        for ids in ([r["product_id"] for r in upserts], [pid for pid, _ in deletes]):
            if len(set(ids)) < len(ids):  # Postgres refuses to change a row twice in a statement
                raise ValueError("a product appears twice among the upserts or the deletes")
        with self._lock:
            upserted = [
                row["product_id"]
                for row in upserts
                if (e := self._ledger.get(row["product_id"])) is None
                or e[0].version < row["version"]
            ]
            deleted = [
                pid
                for pid, version in deletes
                if (e := self._ledger.get(pid)) is None
                or version > e[0].version
                or (version == e[0].version and not e[0].deleted)
            ]
            if then is not None:
                then(upserted, deleted)
            now = datetime.now(UTC)
            fresh = set(upserted)
            for row in upserts:
                pid = row["product_id"]
                if pid not in fresh:
                    continue
                self._ledger[pid] = (LedgerEntry(row["version"], False), now)
                self._products[pid] = copy.deepcopy({c: row.get(c) for c in PRODUCT_COLUMNS})
                attributes = [dict(a) for a in row.get("attributes", ())]
                self._attributes[pid] = sorted(attributes, key=lambda a: a["attribute_key"])
            gone = set(deleted)
            for pid, version in deletes:
                if pid in gone:
                    self._ledger[pid] = (LedgerEntry(version, True), now)
                    self._products.pop(pid, None)
                    self._attributes.pop(pid, None)
        return upserted, deleted

    def live_versions(self, batch: int = 5000) -> Iterator[dict[str, int]]:
        with self._lock:
            found = sorted((pid, row["version"]) for pid, row in self._products.items())
        for start in range(0, len(found), batch):
            yield dict(found[start : start + batch])

    def locked_rows(self, product_ids: Sequence[str], then: Locked) -> None:
        with self._lock:
            rows = {
                p: {
                    **{c: copy.deepcopy(self._products[p].get(c)) for c in INDEX_COLUMNS},
                    "attributes": copy.deepcopy(self._attributes.get(p, [])),
                }
                for p in product_ids
                if p in self._products
            }
            then(rows)

    def get_product(self, product_id: str) -> dict[str, Any] | None:
        return self.get_products([product_id]).get(product_id)

    def get_products(self, product_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {p: copy.deepcopy(self._products[p]) for p in product_ids if p in self._products}

    def get_summaries(self, product_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        return {
            p: {c: row.get(c) for c in SUMMARY_COLUMNS}
            for p, row in self.get_products(product_ids).items()
        }

    def base_embeddings(self, product_ids: Sequence[str]) -> dict[str, tuple[str, bytes]]:
        with self._lock:
            rows = [self._products[p] for p in product_ids if p in self._products]
            return {
                r["product_id"]: (r["model_version"], bytes(r["base_embedding"]))
                for r in rows
                if r.get("base_embedding") is not None
            }

    def get_thumbnail(self, product_id: str) -> bytes | None:
        row = self.get_product(product_id)
        return None if row is None or row.get("thumbnail") is None else bytes(row["thumbnail"])

    def get_attributes(self, product_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        with self._lock:
            return {
                p: copy.deepcopy(self._attributes[p])
                for p in sorted(product_ids)
                if self._attributes.get(p)
            }

    def taxonomy(self) -> list[dict[str, Any]]:
        with self._lock:
            counts: dict[str, int] = {}
            for attributes in self._attributes.values():
                for a in attributes:
                    counts[a["attribute_key"]] = counts.get(a["attribute_key"], 0) + 1
            return [{**t, "products": counts.get(t["key"], 0)} for t in self._taxonomy]

    def products_with(self, attribute_key: str, limit: int = 100) -> list[str]:
        with self._lock:
            found = [
                p
                for p, attributes in self._attributes.items()
                if any(a["attribute_key"] == attribute_key for a in attributes)
            ]
        return sorted(found)[:limit]

    def categories(self) -> list[str]:
        with self._lock:
            return sorted({row["category"] for row in self._products.values()})

    def text_search(
        self,
        terms: Sequence[Term],
        limit: int,
        filters: Filters | None = None,
        offset: int = 0,
    ) -> list[TextMatch]:
        """Each term matches by the share of its words the product has (after the twin's
        analysis, processors/text.lexemes); an excluding term needs them all."""
        wanted = [set(lexemes(" ".join(t.words))) for t in terms]
        found = []
        with self._lock:
            for pid, row in self._products.items():
                keys = tuple(a["attribute_key"] for a in self._attributes.get(pid, ()))
                if not matches(filters, _filter_row(row, keys)):
                    continue
                have = _analysed(row.get("search_text") or "")
                parts = tuple(len(w & have) / len(w) if w else 0.0 for w in wanted)
                hit = any(p > 0 and t.weight > 0 for t, p in zip(terms, parts, strict=True))
                if hit and not any(
                    p == 1 and t.excludes for t, p in zip(terms, parts, strict=True)
                ):
                    score = sum(t.weight * p for t, p in zip(terms, parts, strict=True))
                    found.append(TextMatch(pid, score, parts))
        found.sort(key=lambda m: (-m.score, m.product_id))
        return found[offset : offset + limit]

    def text_excluded(self, product_ids: Sequence[str], terms: Sequence[Term]) -> set[str]:
        refused = [set(lexemes(" ".join(t.words))) for t in terms if t.excludes]
        if not refused:
            return set()
        with self._lock:
            texts = {
                p: self._products[p].get("search_text") for p in product_ids if p in self._products
            }
        return {
            p
            for p, text in texts.items()
            if text is not None and any(w and w <= _analysed(text) for w in refused)
        }

    def count_products(self) -> int:
        with self._lock:
            return len(self._products)

    def product_ids(self, limit: int) -> list[str]:
        with self._lock:
            return sorted(self._products)[:limit]

    def product_batches(self, batch: int = 500) -> Iterator[list[dict[str, Any]]]:
        ids = self.product_ids(len(self._products))
        for start in range(0, len(ids), batch):
            rows = self.get_products(ids[start : start + batch]).values()
            yield [{c: r[c] for c in INDEX_COLUMNS} for r in rows]

    def changed_since(self, since: datetime) -> tuple[dict[str, tuple[datetime, bool]], datetime]:
        with self._lock:
            changed = {
                p: (at, entry.deleted) for p, (entry, at) in self._ledger.items() if at >= since
            }
        return changed, datetime.now(UTC)

    def now(self) -> datetime:
        return datetime.now(UTC)

    def base_versions(self) -> list[str]:
        with self._lock:
            return sorted(
                {
                    r["model_version"]
                    for r in self._products.values()
                    if r.get("base_embedding") is not None
                }
            )

    def ping(self) -> None:
        """Always reachable."""

    def close(self) -> None:
        """Nothing to release."""
