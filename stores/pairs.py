"""Postgres store of click-mined training pairs: idempotent by pair id, read back by time."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, select
from sqlalchemy.dialects.postgresql import insert

from schemas.interactions import TrainingPair
from schemas.tables import training_pairs


def insert_pairs(conn: Connection, pairs: Sequence[TrainingPair]) -> list[str]:
    """Inserts, in the caller's transaction, the pairs not stored yet; returns their ids."""
    if not pairs:
        return []
    rows = [
        {
            **p.model_dump(exclude={"schema_version", "type", "query"}),
            "query": p.query.model_dump(mode="json", exclude_none=True),
        }
        for p in pairs
    ]
    stmt = (
        insert(training_pairs)
        .values(rows)
        .on_conflict_do_nothing(index_elements=[training_pairs.c.pair_id])
        .returning(training_pairs.c.pair_id)
    )
    return [r[0] for r in conn.execute(stmt)]


def as_pair(row: Mapping[Any, Any]) -> TrainingPair:
    return TrainingPair.model_validate({k: v for k, v in row.items() if k != "mined_at"})


class PairRepository:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def write(self, pairs: Sequence[TrainingPair]) -> list[str]:
        """Insert new pairs; a pair id already stored is skipped. Returns the ids inserted."""
        with self.engine.begin() as conn:
            return insert_pairs(conn, pairs)

    def since(self, after: datetime, batch: int = 1000) -> Iterator[dict[str, object]]:
        """Pairs mined after ``after``, oldest first, streamed in batches."""
        query = (
            select(training_pairs)
            .where(training_pairs.c.mined_at > after)
            .order_by(training_pairs.c.mined_at, training_pairs.c.pair_id)
        )
        with self.engine.connect() as conn:
            result = conn.execution_options(yield_per=batch).execute(query)
            for row in result:
                yield dict(row._mapping)
