"""Postgres adapter for the metadata repository (SQLAlchemy Core, sync: callers batch and run it
in an executor)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import OperationalError

from processors.text import Term
from schemas.tables import attribute_taxonomy, product_attributes, product_ledger, products
from stores.base import Applied, LedgerEntry, Locked, StoreTimeout, TextMatch
from stores.filters import Filters
from stores.postgres_text import excluded_query, text_query
from stores.rows import INDEX_COLUMNS


def lock_keys(conn: Connection, keys: Sequence[str], timeout_s: float, namespace: int = 0) -> None:
    """Transaction-scoped advisory locks on ``keys`` (product ids: namespace 0), in one global
    order (no two writers wait on each other in a circle), waiting at most ``timeout_s`` (a
    holder stuck meanwhile fails this transaction, to be retried). Unlike row locks they also
    hold a key with no row yet: a reader locking it waits for the writer inserting it."""
    conn.execute(text(f"SET LOCAL lock_timeout = '{int(timeout_s * 1000)}ms'"))
    ids = sorted(set(keys))
    if ids:
        conn.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, :namespace))"),
            [{"key": key, "namespace": namespace} for key in ids],
        )


def make_engine(dsn: str) -> Engine:
    return create_engine(dsn, pool_pre_ping=True, pool_size=4, max_overflow=4)


def _known(rows: Sequence[Mapping[str, Any]]) -> None:
    """Executing for many parameter sets takes the columns from the statement, not the rows:
    a key that is no column would be dropped silently, so it is refused here."""
    unknown = {k for r in rows for k in r} - set(WRITTEN)
    if unknown:
        raise ValueError(f"unknown products column(s): {', '.join(sorted(unknown))}")


# Columns a writer sets (a generated one, like the full-text vector, is Postgres's to set).
WRITTEN = tuple(c.name for c in products.columns if c.computed is None)
READ = [products.c[n] for n in WRITTEN]


class PostgresRepository:
    def __init__(
        self, engine: Engine, lock_timeout_s: float = 30.0, text_timeout_s: float = 2.0
    ) -> None:
        self.engine = engine
        self.lock_timeout_s = lock_timeout_s
        self.text_timeout_s = text_timeout_s

    @classmethod
    def from_dsn(cls, dsn: str, lock_timeout_s: float = 30.0) -> PostgresRepository:
        return cls(make_engine(dsn), lock_timeout_s)

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def ledger(self, product_ids: Sequence[str]) -> dict[str, LedgerEntry]:
        if not product_ids:
            return {}
        query = select(
            product_ledger.c.product_id, product_ledger.c.version, product_ledger.c.deleted
        ).where(product_ledger.c.product_id.in_(list(product_ids)))
        with self.engine.connect() as conn:
            return {r.product_id: LedgerEntry(r.version, r.deleted) for r in conn.execute(query)}

    def apply(
        self,
        upserts: Sequence[Mapping[str, Any]],
        deletes: Sequence[tuple[str, int]],
        then: Applied | None = None,
    ) -> tuple[list[str], list[str]]:
        """Apply newer versions only, in one transaction. Returns (upserted ids, deleted ids).

        Every product of the batch is locked first (advisory locks, in product-id order, so
        two writers never wait on each other in a circle, and a new product is held too);
        ``then`` runs before the commit, under those locks (stores/base.py)."""
        upserted: list[str] = []
        deleted: list[str] = []
        upserts = sorted(upserts, key=lambda r: str(r["product_id"]))
        deletes = sorted(deletes)
        with self.engine.begin() as conn:
            # a writer stuck while holding a product's lock fails this one, to be retried
            lock_keys(
                conn,
                [r["product_id"] for r in upserts] + [p for p, _ in deletes],
                self.lock_timeout_s,
            )
            if upserts:
                # one statement executed for many parameter sets: compiled once and cached
                # (a multi-row VALUES is compiled again for every batch: ~40 % of the cost)
                ins = insert(product_ledger)
                newer = ins.on_conflict_do_update(
                    index_elements=[product_ledger.c.product_id],
                    set_={
                        "version": ins.excluded.version,
                        "deleted": False,
                        "updated_at": func.now(),
                    },
                    where=product_ledger.c.version < ins.excluded.version,
                ).returning(product_ledger.c.product_id)
                keys = [{"product_id": r["product_id"], "version": r["version"]} for r in upserts]
                upserted = [r[0] for r in conn.execute(newer, keys)]
                fresh = set(upserted)
                rows = [
                    {k: v for k, v in r.items() if k != "attributes"}
                    for r in upserts
                    if r["product_id"] in fresh
                ]
                if rows:
                    _known(rows)
                    pstmt = insert(products)
                    pstmt = pstmt.on_conflict_do_update(
                        index_elements=[products.c.product_id],
                        set_={
                            c.name: pstmt.excluded[c.name]
                            for c in products.columns
                            if c.name != "product_id" and c.computed is None
                        },
                    )
                    conn.execute(pstmt, rows)
                    self._replace_attributes(conn, upserts, fresh)
            if deletes:
                dins = insert(product_ledger).values(
                    [{"product_id": pid, "version": v, "deleted": True} for pid, v in deletes]
                )
                tombstones = dins.on_conflict_do_update(
                    index_elements=[product_ledger.c.product_id],
                    set_={
                        "version": dins.excluded.version,
                        "deleted": True,
                        "updated_at": func.now(),
                    },
                    where=(product_ledger.c.version < dins.excluded.version)
                    | (
                        (product_ledger.c.version == dins.excluded.version)
                        & ~product_ledger.c.deleted
                    ),
                ).returning(product_ledger.c.product_id)
                deleted = [r[0] for r in conn.execute(tombstones)]
                if deleted:
                    conn.execute(products.delete().where(products.c.product_id.in_(deleted)))
                    conn.execute(
                        product_attributes.delete().where(
                            product_attributes.c.product_id.in_(deleted)
                        )
                    )
            if then is not None:
                then(upserted, deleted)
        return upserted, deleted

    @staticmethod
    def _replace_attributes(
        conn: Connection, upserts: Sequence[Mapping[str, Any]], fresh: set[str]
    ) -> None:
        """A product's attributes are replaced whole with each newer version."""
        conn.execute(
            product_attributes.delete().where(product_attributes.c.product_id.in_(sorted(fresh)))
        )
        rows = [
            {"product_id": r["product_id"], **a}
            for r in upserts
            if r["product_id"] in fresh
            for a in r.get("attributes", ())
        ]
        if rows:
            conn.execute(insert(product_attributes), rows)

    def get_attributes(self, product_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        if not product_ids:
            return {}
        with self.engine.connect() as conn:
            return self._attributes(conn, product_ids)

    @staticmethod
    def _attributes(
        conn: Connection, product_ids: Sequence[str]
    ) -> dict[str, list[dict[str, Any]]]:
        t = product_attributes
        query = (
            select(t.c.product_id, t.c.attribute_key, t.c.confidence, t.c.source, t.c.model_version)
            .where(t.c.product_id.in_(list(product_ids)))
            .order_by(t.c.product_id, t.c.attribute_key)
        )
        out: dict[str, list[dict[str, Any]]] = {}
        for r in conn.execute(query):
            row = dict(r._mapping)
            out.setdefault(row.pop("product_id"), []).append(row)
        return out

    def taxonomy(self) -> list[dict[str, Any]]:
        """The attribute vocabulary as migrated, with how many products carry each attribute
        (the attribute inverted index's posting-list lengths)."""
        counts = (
            select(product_attributes.c.attribute_key, func.count().label("products"))
            .group_by(product_attributes.c.attribute_key)
            .subquery()
        )
        t = attribute_taxonomy
        query = (
            select(t, func.coalesce(counts.c.products, 0).label("products"))
            .outerjoin(counts, counts.c.attribute_key == t.c.key)
            .order_by(t.c.position)
        )
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def products_with(self, attribute_key: str, limit: int = 100) -> list[str]:
        query = (
            select(product_attributes.c.product_id)
            .where(product_attributes.c.attribute_key == attribute_key)
            .order_by(product_attributes.c.product_id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(query)]

    def get_product(self, product_id: str) -> dict[str, Any] | None:
        return self.get_products([product_id]).get(product_id)

    def get_products(self, product_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        if not product_ids:
            return {}
        query = select(*READ).where(products.c.product_id.in_(list(product_ids)))
        with self.engine.connect() as conn:
            return {r.product_id: dict(r._mapping) for r in conn.execute(query)}

    def get_summaries(self, product_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """What a result list shows, without the heavy columns (thumbnail, vectors)."""
        if not product_ids:
            return {}
        cols = [products.c[n] for n in ("product_id", "title", "category", "price", "currency")]
        query = select(*cols).where(products.c.product_id.in_(list(product_ids)))
        with self.engine.connect() as conn:
            return {r.product_id: dict(r._mapping) for r in conn.execute(query)}

    def base_embeddings(self, product_ids: Sequence[str]) -> dict[str, tuple[str, bytes]]:
        if not product_ids:
            return {}
        t = products
        query = select(t.c.product_id, t.c.model_version, t.c.base_embedding).where(
            t.c.product_id.in_(list(product_ids)), t.c.base_embedding.is_not(None)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query)
            return {r.product_id: (r.model_version, bytes(r.base_embedding)) for r in rows}

    def get_thumbnail(self, product_id: str) -> bytes | None:
        query = select(products.c.thumbnail).where(products.c.product_id == product_id)
        with self.engine.connect() as conn:
            value = conn.execute(query).scalar_one_or_none()
        return bytes(value) if value is not None else None

    def categories(self) -> list[str]:
        query = select(products.c.category).distinct().order_by(products.c.category)
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(query)]

    def text_search(
        self,
        terms: Sequence[Term],
        limit: int,
        filters: Filters | None = None,
        offset: int = 0,
    ) -> list[TextMatch]:
        if not any(t.weight > 0 for t in terms) or limit <= 0:
            return []
        try:
            with self.engine.begin() as conn:
                # a common word makes Postgres rank every product that has it: bounded
                conn.execute(
                    text(f"SET LOCAL statement_timeout = {int(self.text_timeout_s * 1000)}")
                )
                rows = conn.execute(text_query(terms, limit, filters, offset)).all()
        except OperationalError as exc:
            if getattr(exc.orig, "pgcode", None) == "57014":  # query_canceled: the time limit
                raise StoreTimeout(f"text search took over {self.text_timeout_s} s") from exc
            raise
        return [TextMatch(r[0], float(r[1]), tuple(float(x) for x in r[2:])) for r in rows]

    def text_excluded(self, product_ids: Sequence[str], terms: Sequence[Term]) -> set[str]:
        query = excluded_query(product_ids, terms)
        if query is None or not product_ids:
            return set()
        with self.engine.connect() as conn:
            return {r[0] for r in conn.execute(query)}

    def count_products(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(products)).scalar_one())

    def product_ids(self, limit: int) -> list[str]:
        query = select(products.c.product_id).order_by(products.c.product_id).limit(limit)
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(query)]

    def live_versions(self, batch: int = 5000) -> Iterator[dict[str, int]]:
        after = ""
        while True:
            query = (
                select(products.c.product_id, products.c.version)
                .where(products.c.product_id > after)
                .order_by(products.c.product_id)
                .limit(batch)
            )
            with self.engine.connect() as conn:
                found = {r.product_id: r.version for r in conn.execute(query)}
            if not found:
                return
            yield found
            after = max(found)

    def locked_rows(self, product_ids: Sequence[str], then: Locked) -> None:
        ids = sorted(set(product_ids))
        lock = (
            select(product_ledger.c.product_id)
            .where(product_ledger.c.product_id.in_(ids))
            .order_by(product_ledger.c.product_id)
            .with_for_update()
        )
        read = select(*[products.c[n] for n in INDEX_COLUMNS]).where(products.c.product_id.in_(ids))
        with self.engine.begin() as conn:
            lock_keys(conn, ids, self.lock_timeout_s)
            conn.execute(lock).all()
            rows = {r.product_id: dict(r._mapping) for r in conn.execute(read)}
            attributes = self._attributes(conn, list(rows))
            for pid, row in rows.items():
                row["attributes"] = attributes.get(pid, [])
            then(rows)

    def product_batches(self, batch: int = 500) -> Iterator[list[dict[str, Any]]]:
        """Every product with what its index row needs, in product id order."""
        cols = [products.c[n] for n in INDEX_COLUMNS]
        after = ""
        while True:
            query = (
                select(*cols)
                .where(products.c.product_id > after)
                .order_by(products.c.product_id)
                .limit(batch)
            )
            with self.engine.connect() as conn:
                rows = [dict(r._mapping) for r in conn.execute(query)]
            if not rows:
                return
            yield rows
            after = rows[-1]["product_id"]

    def changed_since(self, since: datetime) -> tuple[dict[str, tuple[datetime, bool]], datetime]:
        """Products written since ``since``: id -> (ledger updated_at, deleted); and the
        database's now."""
        t = product_ledger
        query = select(t.c.product_id, t.c.updated_at, t.c.deleted).where(t.c.updated_at >= since)
        with self.engine.connect() as conn:
            now = conn.execute(select(func.now())).scalar_one()
            changed = {r.product_id: (r.updated_at, r.deleted) for r in conn.execute(query)}
        return changed, now

    def now(self) -> datetime:
        with self.engine.connect() as conn:
            value: datetime = conn.execute(select(func.now())).scalar_one()
        return value

    def base_versions(self) -> list[str]:
        """The base models behind the stored base embeddings (one, unless mid-migration)."""
        query = (
            select(products.c.model_version)
            .where(products.c.base_embedding.is_not(None))
            .distinct()
        )
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(query)]

    def close(self) -> None:
        self.engine.dispose()
