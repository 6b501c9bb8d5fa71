"""The click miner's join state, one per impression id, stored with the pairs it makes.

One transaction locks the impression, reads its state, runs the miner's step on it, inserts the
step's pairs and writes the new state: after a crash both or neither are there, so a click is
never counted as consumed without its pair. (A Faust changelog table could not promise that:
faust-streaming's buffer flush before an offset commit gives up after 0.1 s, so a SIGKILL can
leave offsets committed ahead of the state.) The lock also serialises two miners handed the
same impression during a rebalance. The in-memory twin keeps the same promises in a dict.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import Engine, delete, func, select
from sqlalchemy.dialects.postgresql import insert

from processors.clicks import Step
from schemas.interactions import TrainingPair
from schemas.tables import click_joins, training_pairs
from stores.pairs import as_pair, insert_pairs
from stores.postgres import lock_keys

State = dict[str, Any]
Stepper = Callable[[State | None], Step]


class JoinStore(Protocol):
    def apply(self, impression_id: str, step: Stepper) -> tuple[Step, list[str]]:
        """Runs ``step`` on the impression's state while no one else can; stores its pairs and
        its new state together. Returns the step and the ids of the pairs new to the store."""
        ...

    def pairs(self, impression_id: str, product_id: str | None = None) -> list[TrainingPair]:
        """The stored pairs of an impression (of one clicked product)."""
        ...

    def expire(self, before: datetime, batch: int = 5000) -> int:
        """Drops the states last written before ``before``; returns how many clicks they still
        held waiting for an impression (orphaned)."""
        ...


def _pending(state: State | None) -> int:
    return len((state or {}).get("pending") or [])


class PostgresJoins:
    def __init__(self, engine: Engine, lock_timeout_s: float = 30.0) -> None:
        self.engine = engine
        self.lock_timeout_s = lock_timeout_s

    def apply(self, impression_id: str, step: Stepper) -> tuple[Step, list[str]]:
        with self.engine.begin() as conn:
            # namespace 1: apart from the products' locks
            lock_keys(conn, [impression_id], self.lock_timeout_s, namespace=1)
            state = conn.execute(
                select(click_joins.c.state).where(click_joins.c.impression_id == impression_id)
            ).scalar_one_or_none()
            done = step(state)
            new = insert_pairs(conn, done.pairs)
            if done.state != state:
                stmt = insert(click_joins).values(impression_id=impression_id, state=done.state)
                conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=[click_joins.c.impression_id],
                        set_={"state": stmt.excluded.state, "updated_at": func.now()},
                    )
                )
        return done, new

    def pairs(self, impression_id: str, product_id: str | None = None) -> list[TrainingPair]:
        query = select(training_pairs).where(training_pairs.c.impression_id == impression_id)
        if product_id is not None:
            query = query.where(training_pairs.c.positive == product_id)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(training_pairs.c.pair_id))
            return [as_pair(r._mapping) for r in rows]

    def expire(self, before: datetime, batch: int = 5000) -> int:
        """In short transactions of ``batch`` rows, reading back only the pending counts."""
        t = click_joins
        orphaned = 0
        while True:
            old = select(t.c.impression_id).where(t.c.updated_at < before).limit(batch)
            stmt = (
                delete(t)
                .where(t.c.impression_id.in_(old.scalar_subquery()))
                .returning(func.coalesce(func.jsonb_array_length(t.c.state["pending"]), 0))
            )
            with self.engine.begin() as conn:
                counts = conn.execute(stmt).scalars().all()
            orphaned += sum(int(c) for c in counts)
            if len(counts) < batch:
                return orphaned


class MemoryJoins:
    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._states: dict[str, tuple[State, datetime]] = {}
        self._pairs: dict[str, TrainingPair] = {}
        self._lock = threading.Lock()  # one impression at a time, as Postgres's lock would
        self._clock = clock

    def apply(self, impression_id: str, step: Stepper) -> tuple[Step, list[str]]:
        with self._lock:
            state = self._states.get(impression_id, (None, None))[0]
            done = step(None if state is None else dict(state))
            new = [p.pair_id for p in done.pairs if p.pair_id not in self._pairs]
            for p in done.pairs:
                self._pairs.setdefault(p.pair_id, p)
            if done.state != state:
                self._states[impression_id] = (dict(done.state), self._clock())
            return done, new

    def pairs(self, impression_id: str, product_id: str | None = None) -> list[TrainingPair]:
        with self._lock:
            return sorted(
                (
                    p
                    for p in self._pairs.values()
                    if p.impression_id == impression_id
                    and (product_id is None or p.positive == product_id)
                ),
                key=lambda p: p.pair_id,
            )

    def expire(self, before: datetime, batch: int = 5000) -> int:
        with self._lock:
            old = [i for i, (_, written) in self._states.items() if written < before]
            return sum(_pending(self._states.pop(i)[0]) for i in old)
