"""The click loop's pure parts: judging search results, turning pairs into triplets, the head
(training, ONNX export, serving parity), collection names and the pair export formats."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from bench.judging import judge
from bench.simulator import SimulatedQuery, relevance
from processors.heads import OnnxHead
from stores.pair_files import write_pairs
from stores.reindex import collection_name
from training.click_head import Split, build_pairs
from training.embedding_head import (
    HeadConfig,
    Triplets,
    export_onnx,
    fit_calibration,
    fit_head,
    pair_metrics,
    project,
)

QUERY = SimulatedQuery(np.zeros((4, 4), np.uint8), "Dress")


def _results(categories: list[str]) -> list[dict[str, object]]:
    return [{"product_id": str(i), "category": c} for i, c in enumerate(categories)]


def test_judge_scores_a_perfect_and_a_late_list() -> None:
    perfect = judge([(QUERY, _results(["Dress"] * 10))], {"Dress": 50}, relevance)
    assert perfect == {"queries": 1, "recall_at_10": 1.0, "mrr": 1.0, "ndcg_at_10": 1.0}
    late = judge(
        [(QUERY, _results(["Bag"] * 2 + ["Dress"] + ["Bag"] * 7))], {"Dress": 50}, relevance
    )
    assert late["recall_at_10"] == 0.1
    assert late["mrr"] == pytest.approx(1 / 3, abs=1e-4)
    assert late["ndcg_at_10"] == pytest.approx(0.5 / sum(1 / np.log2(np.arange(2, 12))), abs=1e-3)
    # only 3 dresses exist: finding all 3 first is perfect recall and NDCG
    few = judge([(QUERY, _results(["Dress"] * 3 + ["Bag"] * 7))], {"Dress": 3}, relevance)
    assert few["recall_at_10"] == 1.0 and few["ndcg_at_10"] == 1.0


def _pair(
    i: int, session: str, positive: str, hard: list[str], query: dict[str, str]
) -> dict[str, object]:
    return {
        "pair_id": f"imp{i}:{positive}",
        "impression_id": f"imp{i}",
        "session_id": session,
        "query": query,
        "positive": positive,
        "hard_negatives": hard,
        "hard_negative_positions": list(range(1, len(hard) + 1)),
        "random_negatives": ["p3"],
        "mined_at": datetime(2026, 11, 25, 8, i, tzinfo=UTC),
    }


def test_build_pairs_weights_skips_by_position_and_holds_out_whole_sessions() -> None:
    gallery = np.eye(4, dtype=np.float32)
    ids = ["p0", "p1", "p2", "p3"]
    image = {"kind": "image", "embedding_f16": base64.b64encode(gallery[0].astype("<f2")).decode()}
    sessions = [f"s{i}" for i in range(40)]
    pairs = [_pair(i, s, "p0", ["p1", "p2"], image) for i, s in enumerate(sessions)]
    pairs.append(_pair(50, "s0", "p1", ["p0"], {"kind": "product", "product_id": "p2"}))
    pairs.append(_pair(51, "s0", "gone", [], image))  # a product deleted since
    pairs.append(_pair(52, "s0", "p1", [], {"kind": "text", "text": "red dress"}))
    data = build_pairs(pairs, ids, gallery, split=Split(25))
    assert data.skipped == {"no_query_embedding": 1, "unknown_product": 1}
    assert len(data.train) + len(data.held_out) == 41
    assert 0 < len(data.held_out) < 41
    out = {s for s in sessions if Split(25).held_out(s)}
    assert data.sessions == (len(set(sessions) - out), len(out))
    first = data.train if not Split(25).held_out("s0") else data.held_out
    row = int(np.flatnonzero(first.positive == 0)[0])
    assert first.negatives[row].tolist()[:3] == [1, 2, 3]
    assert first.weights[row].tolist()[:3] == pytest.approx([1.0, 0.5, 1.0])
    assert data.mined == (pairs[0]["mined_at"], pairs[40]["mined_at"])  # skipped ones not
    assert len(data.train.coclicks) == len(data.held_out.coclicks) == 0  # one click each


def test_the_keyed_split_cannot_be_predicted_without_its_key() -> None:
    """Whoever mints sessions knows the unkeyed hash; with a key, membership follows the key:
    as many sessions held out, but other ones, and another key picks others again."""
    sessions = [f"session-{i}" for i in range(2000)]
    public = {s for s in sessions if Split(20).held_out(s)}
    one = {s for s in sessions if Split(20, b"a" * 32).held_out(s)}
    other = {s for s in sessions if Split(20, b"b" * 32).held_out(s)}
    assert one == {s for s in sessions if Split(20, b"a" * 32).held_out(s)}  # stable
    for split in (public, one, other):
        assert 340 < len(split) < 460  # 20 % of 2000, give or take
    assert len(one & public) < 160 and len(one & other) < 160  # ~80 by chance, not ~400
    assert "a" * 32 not in repr(Split(20, b"a" * 32))


def test_products_clicked_in_one_impression_become_coclicks_on_their_side() -> None:
    gallery = np.eye(4, dtype=np.float32)
    ids = ["p0", "p1", "p2", "p3"]
    query = {"kind": "product", "product_id": "p3"}
    out = next(f"s{i}" for i in range(100) if Split(20).held_out(f"s{i}"))
    kept = next(f"s{i}" for i in range(100) if not Split(20).held_out(f"s{i}"))
    pairs = [
        _pair(1, kept, "p0", [], query),
        _pair(1, kept, "p1", ["p0"], query),  # same impression: p0 and p1 co-clicked
        _pair(2, kept, "p2", [], query),  # alone in its impression
        _pair(3, out, "p1", [], query),
        _pair(3, out, "p2", [], query),
    ]
    data = build_pairs(pairs, ids, gallery, split=Split(20))
    assert sorted(map(tuple, data.train.coclicks.tolist())) == [(0, 1), (1, 0)]
    assert sorted(map(tuple, data.held_out.coclicks.tolist())) == [(1, 2), (2, 1)]


def _clusters(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two classes that differ only in dims 0-1, drowned in larger shared noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    x = rng.normal(0, 1.0, (n, 16)).astype(np.float32)
    x[:, 0] += np.where(labels == 0, 1.5, -1.5)
    x[:, 1] += np.where(labels == 0, -1.5, 1.5)
    return project(None, x), labels


@pytest.mark.parametrize("loss", ["infonce", "triplet"])
def test_head_learns_what_clicks_say_and_serves_the_same_through_onnx(loss: str) -> None:
    gallery, labels = _clusters(200, 0)
    queries, q_labels = _clusters(600, 1)
    rng = np.random.default_rng(2)
    same = [rng.choice(np.flatnonzero(labels == c)) for c in q_labels]
    other = [rng.choice(np.flatnonzero(labels != c), 4) for c in q_labels]
    data = Triplets(
        queries,
        gallery,
        np.asarray(same),
        np.asarray(other),
        np.ones((600, 4), np.float32),
    )
    train, held = data.subset(np.arange(500)), data.subset(np.arange(500, 600))
    config = HeadConfig(dim=8, max_epochs=15, lr=1e-2, loss=loss)  # type: ignore[arg-type]
    fit = fit_head(train, held, config)
    before = pair_metrics(None, held)["pair_accuracy"]
    after = pair_metrics(fit.weight, held)["pair_accuracy"]
    assert after > before + 0.05, (before, after)
    assert fit.best_epoch >= 1 and len(fit.history) == 16
    head = OnnxHead("h1", export_onnx(fit.weight), 8)
    np.testing.assert_allclose(
        head.project(queries[:5]), project(fit.weight, queries[:5]), atol=1e-5
    )
    assert head.project(queries[:5]).shape == (5, 8)


def _top(weight: np.ndarray | None, queries: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    sims = project(weight, queries) @ project(weight, gallery).T
    return -np.sort(-sims, axis=1)[:, :20]


def test_calibration_puts_a_heads_cosines_on_the_base_scale() -> None:
    gallery, _ = _clusters(200, 0)
    queries, _ = _clusters(100, 1)
    same = fit_calibration(np.eye(16, dtype=np.float32), queries, gallery, top=20)
    assert same["scale"] == pytest.approx(1.0) and same["shift"] == pytest.approx(0.0, abs=1e-6)
    # a head keeping only the class dimensions: its top cosines are bunched near 1
    weight = np.zeros((2, 16), np.float32)
    weight[0, 0] = weight[1, 1] = 1.0
    cal = fit_calibration(weight, queries, gallery, top=20)
    base, head = _top(None, queries, gallery), _top(weight, queries, gallery)
    assert head.std(1).mean() < base.std(1).mean() / 1.5
    served = cal["shift"] + cal["scale"] * head
    assert served.std(1).mean() == pytest.approx(base.std(1).mean(), rel=1e-3)
    assert served.mean() == pytest.approx(base.mean(), abs=1e-3)
    onnx = OnnxHead("h", export_onnx(weight), 2, cal)
    assert onnx.score(0.5) == pytest.approx(cal["shift"] + 0.5 * cal["scale"])
    assert OnnxHead("h", export_onnx(weight), 2).score(0.5) == 0.5  # none registered


def test_collection_names_are_milvus_safe() -> None:
    name = collection_name("products_v1", "click-head-2026.11/25 x", datetime(2026, 11, 25, 8))
    assert name == "products_v1__click_head_2026_11_25_x__20261125080000"


def test_pairs_export_as_jsonl_and_parquet(tmp_path: Path) -> None:
    row = {
        "pair_id": "i1:p1",
        "impression_id": "i1",
        "session_id": "s1",
        "user_id": None,
        "query": {"kind": "product", "product_id": "p9"},
        "positive": "p1",
        "position": 3,
        "hard_negatives": ["p7", "p8"],
        "hard_negative_positions": [1, 2],
        "random_negatives": ["p2"],
        "interaction": "interaction.click",
        "ranker_model_version": "m1",
        "shown_at": datetime(2026, 11, 25, 8, 0, tzinfo=UTC),
        "clicked_at": datetime(2026, 11, 25, 8, 1, tzinfo=UTC),
        "mined_at": datetime(2026, 11, 25, 8, 2, tzinfo=UTC),
    }
    assert write_pairs([row, {**row, "pair_id": "i1:p2"}], tmp_path / "p.jsonl", "jsonl") == 2
    first = json.loads((tmp_path / "p.jsonl").read_text().splitlines()[0])
    assert first["type"] == "training.pair" and first["hard_negatives"] == ["p7", "p8"]
    assert first["clicked_at"] == "2026-11-25T08:01:00+00:00"
    assert write_pairs([row], tmp_path / "p.parquet", "parquet") == 1
    table = pq.read_table(tmp_path / "p.parquet").to_pylist()
    assert table[0]["hard_negative_positions"] == [1, 2]
    assert json.loads(table[0]["query"]) == row["query"]
    with pytest.raises(ValueError, match="parquet or jsonl"):
        write_pairs([row], tmp_path / "p.csv", "csv")


def test_simulated_shoppers_click_by_relevance_under_position_bias() -> None:
    from bench.simulator import ShopperModel, shopper_clicks

    results = _results(["Dress", "Bag", "Dress", "Dress", "Dress", "Dress"])
    exact = ShopperModel(noise=0.0, max_clicks=2)
    for seed in range(20):
        clicks = shopper_clicks(QUERY, results, np.random.default_rng(seed), exact)
        assert clicks[0][0] == 1  # the first result is always looked at
        assert len(clicks) <= 2 and all(r["category"] == "Dress" for _, r, _ in clicks)
    # position bias: lower results are clicked less often
    counts = np.zeros(len(results))
    for seed in range(400):
        rng = np.random.default_rng(seed)
        for position, _, _ in shopper_clicks(QUERY, results, rng, ShopperModel(max_clicks=6)):
            counts[position - 1] += 1
    assert counts[0] > counts[2] > counts[5] and counts[1] < 0.15 * 400
