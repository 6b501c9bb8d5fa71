"""The click-join store's promises, on Postgres and on its in-memory twin: a step's pairs and
its state are stored together or not at all, one impression is stepped by one caller at a
time, stored pairs are read back for a re-send, and old states expire with their orphans."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from processors.clicks import ClickMiner, ListSampler, MiningConfig, Outcome, Step
from schemas.interactions import Interaction, Query, SearchImpression, Shown
from stores.joins import JoinStore, MemoryJoins, PostgresJoins
from tests.contract.conftest import contract_database, services

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
MINER = ClickMiner(ListSampler([f"p{i}" for i in range(40)]), MiningConfig(60, 2))


@pytest.fixture(params=["memory", pytest.param("postgres", marks=services)])
def joins(request: pytest.FixtureRequest) -> Iterator[JoinStore]:
    if request.param == "memory":
        yield MemoryJoins()
        return
    with contract_database(request) as postgres:
        yield PostgresJoins(postgres.engine, lock_timeout_s=10)


def impression(iid: str, at: datetime = T0) -> SearchImpression:
    return SearchImpression(
        impression_id=iid,
        session_id="s-1",
        query=Query(kind="product", product_id="p0"),
        results=[Shown(product_id=f"p{i}", position=i) for i in range(1, 7)],
        model_version="ranker-1",
        event_time=at,
    )


def click(iid: str, pid: str, after_s: float = 5) -> Interaction:
    return Interaction(
        type="interaction.click",
        impression_id=iid,
        session_id="s-1",
        product_id=pid,
        event_time=T0 + timedelta(seconds=after_s),
    )


def test_a_steps_pairs_and_state_are_stored_together(joins: JoinStore) -> None:
    step, new = joins.apply("i1", lambda s: MINER.on_impression(s, impression("i1")))
    assert step.outcomes == [Outcome.IMPRESSION] and new == []
    step, new = joins.apply("i1", lambda s: MINER.on_click(s, click("i1", "p3")))
    assert new == ["i1:p3"] and step.pairs[0].hard_negatives == ["p1", "p2"]
    # the click again, as after a crash: the stored state knows it, the pair is read back
    step, new = joins.apply("i1", lambda s: MINER.on_click(s, click("i1", "p3")))
    assert step.outcomes == [Outcome.DUPLICATE] and new == []
    assert joins.pairs("i1", "p3") == [MINER.on_click(
        MINER.on_impression(None, impression("i1")).state, click("i1", "p3")).pairs[0]]  # fmt: skip
    assert joins.pairs("i1", "p4") == [] and joins.pairs("other") == []


def test_a_step_that_fails_stores_nothing(joins: JoinStore) -> None:
    joins.apply("i2", lambda s: MINER.on_impression(s, impression("i2")))

    def fails(state: dict[str, object] | None) -> Step:
        MINER.on_click(state, click("i2", "p2"))  # computed, then the step fails
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        joins.apply("i2", fails)
    assert joins.pairs("i2") == []
    step, new = joins.apply("i2", lambda s: MINER.on_click(s, click("i2", "p2")))
    assert step.outcomes == [Outcome.PAIRED] and new == ["i2:p2"]


def test_one_impression_is_stepped_by_one_caller_at_a_time(joins: JoinStore) -> None:
    """Two miners handed the same impression (a rebalance): the second waits for the first
    and sees its state, so each click pairs once."""
    joins.apply("i3", lambda s: MINER.on_impression(s, impression("i3")))
    inside = threading.Event()
    outcomes: list[Outcome] = []

    def slow(state: dict[str, object] | None) -> Step:
        inside.set()
        time.sleep(0.5)
        return MINER.on_click(state, click("i3", "p5"))

    first = threading.Thread(target=lambda: outcomes.extend(joins.apply("i3", slow)[0].outcomes))
    first.start()
    assert inside.wait(5)
    second, new = joins.apply("i3", lambda s: MINER.on_click(s, click("i3", "p5")))
    first.join()
    assert outcomes == [Outcome.PAIRED]
    assert second.outcomes == [Outcome.DUPLICATE] and new == []
    assert [p.pair_id for p in joins.pairs("i3")] == ["i3:p5"]


def test_states_expire_by_when_they_were_last_written_counting_orphans(
    joins: JoinStore,
) -> None:
    """By the miner's clock, not the events' (a backlog's old events are still needed)."""
    joins.apply("old", lambda s: MINER.on_click(s, click("old", "p1")))
    joins.apply("old", lambda s: MINER.on_click(s, click("old", "p2")))
    time.sleep(0.05)
    cutoff = datetime.now(UTC)
    time.sleep(0.05)
    joins.apply("new", lambda s: MINER.on_click(s, click("new", "p1")))  # events as old
    assert joins.expire(cutoff, batch=1) == 2
    assert joins.expire(cutoff) == 0
    # the expired impression starts afresh; the newer one still waits for its impression
    step, _ = joins.apply("old", lambda s: MINER.on_click(s, click("old", "p1")))
    assert step.outcomes == [Outcome.PENDING]
    step, _ = joins.apply("new", lambda s: MINER.on_impression(s, impression("new")))
    assert step.outcomes == [Outcome.IMPRESSION, Outcome.PAIRED]
    assert joins.expire(datetime.now(UTC) + timedelta(seconds=5)) == 1  # "old" again
