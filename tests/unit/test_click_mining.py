"""The click/impression join: pairs, hard and random negatives, windows, duplicates, order."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from processors.clicks import ClickMiner, ListSampler, MiningConfig, Outcome
from schemas.interactions import Interaction, Query, SearchImpression, Shown

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
CATALOGUE = [f"p{i}" for i in range(50)]


def impression(iid: str = "imp-1", shown: int = 6) -> SearchImpression:
    return SearchImpression(
        impression_id=iid,
        session_id="s-1",
        user_id="u-1",
        query=Query(kind="product", product_id="p0"),
        results=[Shown(product_id=f"p{i}", position=i) for i in range(1, shown + 1)],
        model_version="ranker-1",
        event_time=T0,
    )


def click(
    pid: str, after_s: float = 5, iid: str = "imp-1", position: int | None = None
) -> Interaction:
    return Interaction(
        type="interaction.click",
        impression_id=iid,
        session_id="s-1",
        product_id=pid,
        position=position,
        event_time=T0 + timedelta(seconds=after_s),
    )


def miner(window_s: float = 60) -> ClickMiner:
    return ClickMiner(ListSampler(CATALOGUE), MiningConfig(window_s=window_s, random_negatives=3))


def test_a_click_pairs_with_the_skipped_results_above_it() -> None:
    m = miner()
    state = m.on_impression(None, impression()).state
    step = m.on_click(state, click("p4"))
    assert step.outcomes == [Outcome.PAIRED]
    pair = step.pairs[0]
    assert pair.pair_id == "imp-1:p4" and pair.positive == "p4" and pair.position == 4
    assert pair.hard_negatives == ["p1", "p2", "p3"]
    assert len(pair.random_negatives) == 3
    assert not set(pair.random_negatives) & {f"p{i}" for i in range(1, 7)}  # never shown ones
    assert pair.query.product_id == "p0" and pair.ranker_model_version == "ranker-1"
    # a later click further down: the earlier clicked result is not a hard negative
    later = m.on_click(step.state, click("p6", after_s=20))
    assert later.pairs[0].hard_negatives == ["p1", "p2", "p3", "p5"]


def test_duplicates_late_and_unshown_clicks_make_no_pair() -> None:
    m = miner(window_s=60)
    state = m.on_impression(None, impression()).state
    state = m.on_click(state, click("p2")).state
    assert m.on_click(state, click("p2", after_s=9)).outcomes == [Outcome.DUPLICATE]
    assert m.on_click(state, click("p3", after_s=61)).outcomes == [Outcome.LATE]
    assert m.on_click(state, click("p40")).outcomes == [Outcome.NOT_SHOWN]
    assert m.on_impression(state, impression()).outcomes == [Outcome.DUPLICATE_IMPRESSION]


def test_clicks_before_their_impression_wait_and_then_pair() -> None:
    m = miner()
    step = m.on_click(None, click("p3"))
    assert step.outcomes == [Outcome.PENDING] and not step.pairs
    assert m.on_click(step.state, click("p3")).outcomes == [Outcome.DUPLICATE]
    step = m.on_click(step.state, click("p5", after_s=8))
    done = m.on_impression(step.state, impression())
    assert done.outcomes == [Outcome.IMPRESSION, Outcome.PAIRED, Outcome.PAIRED]
    assert [p.positive for p in done.pairs] == ["p3", "p5"]
    assert done.pairs[1].hard_negatives == ["p1", "p2", "p4"]
    assert done.state["pending"] == []


def test_state_is_plain_json_and_replays_give_identical_pairs() -> None:
    m = miner()
    state = json.loads(json.dumps(m.on_impression(None, impression()).state))
    first = m.on_click(state, click("p4")).pairs[0]
    again = m.on_click(json.loads(json.dumps(state)), click("p4")).pairs[0]
    assert first == again  # same random negatives from the same pair id
    other = m.on_click(state, click("p5")).pairs[0]
    assert other.random_negatives != first.random_negatives  # seeded by the pair id
