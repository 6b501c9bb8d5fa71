"""The click-head bench's replay: the served rerank over an in-memory catalogue, and SIMULATED
clicks mined into pairs by the miner's own logic (no services)."""

from __future__ import annotations

import numpy as np

from bench.click_heads import Replay, Side, calibrated, mine
from bench.click_loop import LoopSizes
from bench.simulator import SimulatedQuery
from training.click_head import build_pairs


def _side(vectors: np.ndarray) -> Side:
    n = len(vectors)
    return Side(vectors.astype(np.float32), [{} for _ in range(n)], [{} for _ in range(n)])


def test_replayed_clicks_become_the_miners_pairs() -> None:
    rng = np.random.default_rng(0)
    centres = np.eye(8, dtype=np.float32)[:2] * 3
    labels = np.arange(40) % 2
    catalogue = _side(centres[labels] + rng.normal(0, 1, (40, 8)))
    replay = Replay(
        [f"p{i}" for i in range(40)], ["A" if c else "B" for c in labels], catalogue, 20
    )
    q_labels = np.arange(30) % 2
    queries = _side(centres[q_labels] + rng.normal(0, 1, (30, 8)))
    pool = [SimulatedQuery(np.zeros((4, 4), np.uint8), "A" if c else "B") for c in q_labels]
    ranked = replay.rank(queries, None)
    assert all(len(r) == 10 for r in ranked)
    same = np.mean(
        [r["category"] == q.category for rs, q in zip(ranked, pool, strict=True) for r in rs]
    )
    assert same > 0.8  # the classes are well apart: the ranking finds them
    sizes = LoopSizes(products=40, train_sessions=12, queries_per_session=5)
    pairs = mine(replay, pool, queries, sizes)
    assert len(pairs) >= 12  # the first result is always looked at
    assert len({p["pair_id"] for p in pairs}) == len(pairs)
    for p in pairs:  # skips are above the click; random negatives were never shown
        assert p["positive"] not in p["hard_negatives"]
        assert all(pos < p["position"] for pos in p["hard_negative_positions"])
        assert len(p["hard_negatives"]) == len(p["hard_negative_positions"]) < p["position"]
        shown = {p["positive"], *p["hard_negatives"]}
        assert len(p["random_negatives"]) == 4 and not set(p["random_negatives"]) & shown
    data = build_pairs(pairs, replay.ids, catalogue.vectors)
    assert len(data.train) + len(data.held_out) == len(pairs)
    assert calibrated({"shift": 0.5, "scale": 2.0})(np.array([0.25]))[0] == 1.0
