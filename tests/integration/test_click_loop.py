"""The click loop end to end, as `stylestream eval clicks --small` runs it, on real Kafka,
Postgres and Milvus with real worker, API and miner processes: SIMULATED clicks become pairs,
a head is trained and registered, and a re-index under search load and product updates fails
no search and loses no update. (Whether the head beats the base model needs the full size:
`stylestream eval clicks`, figures in the README.)"""

from __future__ import annotations

from typing import Any

import pytest

from bench.click_loop import LoopSizes, run_click_loop
from config.settings import Settings

pytestmark = pytest.mark.services


def test_the_loop_runs_end_to_end(
    running_services: Settings, model_path: Any, attribute_models: Any
) -> None:
    sizes = LoopSizes.small()
    report = run_click_loop(running_services, sizes, print)
    sim = report["simulation"]
    assert sim["searches"] == sizes.train_sessions * sizes.queries_per_session
    assert sim["failed_queries"] == 0 and sim["clicks"] >= 50
    # every accepted click became exactly one pair (held-out sessions add theirs later)
    assert report["pairs_mined"] >= sim["clicks"]
    model = report["model"]
    lineage = model["lineage"]
    assert lineage["pairs"] == sim["clicks"]  # only the teaching sessions' pairs
    assert lineage["held_out_sessions"] > 0 and lineage["gallery_products"] == sizes.products
    assert model["dim"] == 128
    reindex = report["reindex"]
    assert reindex["rows"] == sizes.products and reindex["missing_base_embedding"] == 0
    assert reindex["searches_during"] > 0 and reindex["failed_queries_during"] == 0
    assert (
        reindex["updates_in_new_collection"] == reindex["updates_during"] == sizes.reindex_updates
    )
    assert model["model_version"] in reindex["model_versions_served_during"]
    for side in ("base", "trained"):
        assert report[side]["queries"] == sizes.eval_sessions * sizes.queries_per_session
        assert 0 < report[side]["recall_at_10"] <= 1 and 0 < report[side]["ndcg_at_10"] <= 1
        assert 0 < report[side]["visual_only_recall_at_10"] <= 1
