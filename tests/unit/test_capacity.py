"""The capacity model: replica counts follow the measured throughputs and round up."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.capacity import Load, Measured, plan

MEASURED = Measured(
    worker_products_per_s=100.0,
    worker_rss_mb=1024.0,
    api_queries_per_s=50.0,
    api_rss_mb=512.0,
    milvus_queries_per_s=200.0,
    dim=1280,
)


def test_replicas_are_the_load_over_a_replicas_planned_share() -> None:
    out = plan(Load(events_per_s=141, catalogue=1000, queries_per_s=36), MEASURED)
    assert out["workers"] == 3  # 141 / (100 * 0.7) = 2.01
    assert out["api_replicas"] == 2  # 36 / 35 = 1.03
    assert out["partitions"] == 6
    assert out["milvus_query_nodes"] == 1


def test_a_small_load_still_gets_one_of_each() -> None:
    out = plan(Load(events_per_s=0, catalogue=0, queries_per_s=0), MEASURED)
    assert (out["workers"], out["api_replicas"], out["milvus_query_nodes"]) == (1, 1, 1)
    assert out["partitions"] == 4


def test_milvus_nodes_follow_memory_or_queries_whichever_needs_more() -> None:
    big = plan(Load(events_per_s=1, catalogue=50_000_000, queries_per_s=1), MEASURED)
    per_vector = 1280 * 4 + 128 + 600
    assert big["memory_gb"]["milvus_segments"] == pytest.approx(50e6 * per_vector / 2**30, 0.01)
    assert big["milvus_nodes_by"]["memory"] == 25  # 272 GiB / (16 GiB * 0.7) = 24.3
    busy = plan(Load(events_per_s=1, catalogue=1000, queries_per_s=700), MEASURED)
    assert busy["milvus_nodes_by"] == {"memory": 1, "queries": 5}
    assert busy["milvus_query_nodes"] == 5


def test_measured_figures_come_from_the_bench_results(tmp_path: Path) -> None:
    def write(name: str, body: object) -> None:
        (tmp_path / name).write_text(json.dumps(body))

    write(
        "ingest.json",
        {
            "burst": {"products_per_s": 90.0},
            "scaling": [
                {"workers": 1, "products_per_s": 120.0, "worker_rss_mb": [900.0]},
                {"workers": 2, "products_per_s": 150.0, "worker_rss_mb": [800.0, 850.0]},
            ],
        },
    )
    write("serve.json", {"api": {"closed_loop": [{"qps": 30.0}, {"qps": 45.0}], "api_rss_mb": 400}})
    settings = [
        {"ef": 16, "recall_at_10": 0.90, "single_qps": 300.0},
        {"ef": 64, "recall_at_10": 0.99, "single_qps": 150.0},
    ]
    write(
        "search.json",
        {
            "milvus": [
                {"backend": "milvus-lite", "vectors": 10, "dim": 8, "settings": settings},
                {"backend": "milvus-standalone", "vectors": 99, "dim": 8, "settings": []},
            ]
        },
    )
    at_dim = {"backend": "milvus-standalone", "vectors": 10, "dim": 1280, "settings": settings}
    write("search-1280.json", {"milvus": [at_dim]})
    got = Measured.from_results(tmp_path, 1280)
    assert got.worker_products_per_s == 120.0 and got.worker_rss_mb == 900.0
    assert got.api_queries_per_s == 45.0 and got.api_rss_mb == 400.0
    assert got.milvus_queries_per_s == 150.0  # the fastest setting with recall >= 0.95
    assert "ef 64" in got.milvus_basis and "1280-d" in got.milvus_basis  # the model's dim
