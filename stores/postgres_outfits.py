"""The outfit store on Postgres (stores/outfits.py holds the contract and the twin): one
transaction per batch, each outfit's row written only over an older version (the check and the
write are one statement: ``ON CONFLICT ... WHERE version < excluded.version``), its items
replaced with it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, delete, func, select
from sqlalchemy.dialects.postgresql import insert

from processors.outfits import newest
from schemas.outfits import OutfitDelete
from schemas.tables import outfit_items, outfits
from stores.outfits import Outfit, OutfitEvent


def _values(e: OutfitEvent) -> dict[str, Any]:
    common = {"outfit_id": e.outfit_id, "version": e.version, "event_time": e.event_time,
              "produced_at": e.produced_at}  # fmt: skip
    if isinstance(e, OutfitDelete):
        return {**common, "deleted": True, "label": None, "label_confidence": None,
                "source": None, "title": None}  # fmt: skip
    return {**common, "deleted": False, "label": e.label, "label_confidence": e.label_confidence,
            "source": e.source, "title": e.title}  # fmt: skip


def _outfit(row: dict[str, Any], items: list[tuple[str, str]]) -> Outfit:
    return Outfit(
        outfit_id=row["outfit_id"],
        version=row["version"],
        label=row["label"],
        label_confidence=float(row["label_confidence"]),
        source=row["source"],
        title=row["title"],
        items=tuple(sorted(items)),
        event_time=row["event_time"],
    )


class PostgresOutfits:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def apply(self, events: Sequence[OutfitEvent]) -> tuple[list[str], list[str]]:
        chosen = sorted(newest(events), key=lambda e: e.outfit_id)  # one lock order
        upserted: list[str] = []
        deleted: list[str] = []
        if not chosen:
            return upserted, deleted
        t = outfits
        with self.engine.begin() as conn:
            for e in chosen:
                values = _values(e)
                stmt = insert(t).values(**values, updated_at=func.now())
                upsert = stmt.on_conflict_do_update(
                    index_elements=[t.c.outfit_id],
                    set_={k: stmt.excluded[k] for k in [*values, "updated_at"] if k != "outfit_id"},
                    # newer wins; at one version a delete wins over a live row (as for
                    # products), whichever batch each came in
                    where=(t.c.version < stmt.excluded.version)
                    | (
                        (t.c.version == stmt.excluded.version)
                        & t.c.deleted.is_(False)
                        & stmt.excluded.deleted.is_(True)
                    ),
                ).returning(t.c.outfit_id)
                if conn.execute(upsert).first() is None:
                    continue  # stale or a duplicate
                conn.execute(delete(outfit_items).where(outfit_items.c.outfit_id == e.outfit_id))
                if isinstance(e, OutfitDelete):
                    deleted.append(e.outfit_id)
                    continue
                conn.execute(
                    insert(outfit_items),
                    [{"outfit_id": e.outfit_id, "role": i.role, "product_id": i.product_id}
                     for i in e.items],
                )  # fmt: skip
                upserted.append(e.outfit_id)
        return upserted, deleted

    def _read(self, where: Any, limit: int | None = None) -> list[Outfit]:
        t = outfits
        query = select(t).where(where, t.c.deleted.is_(False))
        query = query.order_by(t.c.event_time.desc(), t.c.outfit_id.desc()).limit(limit)
        # one snapshot for the rows and their items: a write between two reads cannot pair a
        # row with another version's items
        with self.engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
            ids = [r["outfit_id"] for r in rows]
            items: dict[str, list[tuple[str, str]]] = {}
            if ids:
                i = outfit_items
                picked = select(i.c.outfit_id, i.c.role, i.c.product_id).where(
                    i.c.outfit_id.in_(ids)
                )
                for r in conn.execute(picked):
                    items.setdefault(r.outfit_id, []).append((r.role, r.product_id))
        return [_outfit(r, items.get(r["outfit_id"], [])) for r in rows]

    def get_outfits(self, outfit_ids: Sequence[str]) -> dict[str, Outfit]:
        if not outfit_ids:
            return {}
        found = self._read(outfits.c.outfit_id.in_(list(outfit_ids)))
        return {o.outfit_id: o for o in found}

    def outfits_with(self, product_id: str, limit: int = 50) -> list[Outfit]:
        holding = select(outfit_items.c.outfit_id).where(outfit_items.c.product_id == product_id)
        return self._read(outfits.c.outfit_id.in_(holding), limit)

    def versions(self, outfit_ids: Sequence[str]) -> dict[str, tuple[int, bool]]:
        if not outfit_ids:
            return {}
        t = outfits
        query = select(t.c.outfit_id, t.c.version, t.c.deleted).where(
            t.c.outfit_id.in_(list(outfit_ids))
        )
        with self.engine.connect() as conn:
            return {r.outfit_id: (r.version, r.deleted) for r in conn.execute(query)}

    def count(self, source: str | None = None) -> int:
        t = outfits
        query = select(func.count()).select_from(t).where(t.c.deleted.is_(False))
        if source is not None:
            query = query.where(t.c.source == source)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())
