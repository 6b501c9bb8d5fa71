"""`stylestream bench serve` and `bench ingest` at a tiny size on real Kafka, Postgres and
Milvus with real API and worker processes: every figure is there and nothing failed. (Whether
the goals hold needs the full size on a quiet machine: README, bench/results.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.ingest import IngestSizes, run_ingest_bench
from bench.serve import ServeSizes, run_serve_bench
from bench.store import StoreSizes, run_store_bench
from bench.text_serve import TextServeSizes, run_text_serve_bench
from config.settings import Settings

pytestmark = pytest.mark.services


def test_bench_serve_measures_the_api_against_its_encoder(
    running_services: Settings, model_path: Any, attribute_models: Any, tmp_path: Path
) -> None:
    sizes = ServeSizes(
        concurrencies=(1, 4), seconds=2, open_loop_seconds=2, queries=20, products=200
    )
    report = run_serve_bench(running_services, sizes, tmp_path, print)
    assert report["encoder"]["batched_images_per_s"] > 0
    assert report["encoder"]["single_images_per_s"] > 0
    closed = report["api"]["closed_loop"]
    assert [r["concurrency"] for r in closed] == [1, 4]
    for run in closed:
        assert run["requests"] > 0 and run["errors"] == 0, run["error_examples"]
        assert run["mean_batch"] >= 1
    half = report["api"]["half_load"]
    assert half["requests"] > 0 and half["errors"] == 0, half["error_examples"]
    assert half["p99_ms"] >= half["p50_ms"] > 0
    done = report["done_when"]
    assert done["throughput_goal_per_s"] == pytest.approx(
        0.8 * report["encoder"]["batched_images_per_s"], rel=0.01
    )
    assert (tmp_path / "serve.json").exists() and (tmp_path / "serve.png").stat().st_size > 0


def test_bench_text_measures_words_and_the_hybrid_against_the_store_alone(
    running_services: Settings, model_path: Any, attribute_models: Any, tmp_path: Path
) -> None:
    sizes = TextServeSizes(concurrencies=(1, 2), seconds=2, queries=40, products=200)
    report = run_text_serve_bench(running_services, sizes, tmp_path, print)
    store = report["store_alone"]
    assert store["queries"] == 80 and store["with_results"] > 0
    assert store["p99_ms"] >= store["p50_ms"] > 0
    assert [r["concurrency"] for r in report["api"]] == [1, 2]
    assert [r["concurrency"] for r in report["api_hybrid"]] == [1, 2]
    for run in report["api"] + report["api_hybrid"]:
        assert run["requests"] > 0 and run["errors"] == 0, run["error_examples"]
    assert report["hybrid_model"].startswith("text-minilm-")
    done = report["done_when"]
    assert done["ranking"] == "hybrid" and done["goal_p99_ms"] == 50
    assert done["light_load_p99_ms"] == report["api_hybrid"][0]["p99_ms"]
    assert (tmp_path / "text-serve.json").exists()
    assert (tmp_path / "text-serve.png").stat().st_size > 0


def test_bench_ingest_measures_the_worker_against_a_batch_script(
    running_services: Settings, model_path: Any, attribute_models: Any, tmp_path: Path
) -> None:
    sizes = IngestSizes(burst=60, rates=(20.0,), steady_seconds=3, workers=(1, 2))
    report = run_ingest_bench(running_services, sizes, tmp_path, print)
    assert report["batch_script"]["products"] == 60
    assert report["batch_script"]["products_per_s"] > 0
    assert report["burst"]["products"] == 60 and report["burst"]["products_per_s"] > 0
    (steady,) = report["steady"]
    assert steady["products"] == 60 and steady["rate_per_s"] == 20.0
    assert len(steady["lags_s"]) == 60 and 0 <= steady["lag_p50_s"] <= steady["lag_p99_s"]
    one, two = report["scaling"]
    assert (one["workers"], two["workers"]) == (1, 2)
    for run in (one, two):
        assert run["products"] == 60 and run["products_per_s"] > 0
        assert len(run["worker_rss_mb"]) == run["workers"] and min(run["worker_rss_mb"]) > 100
    assert one["speedup"] == 1.0 and two["speedup"] > 0
    assert set(report["done_when"]) == {
        "stream_share_of_batch",
        "stream_met",
        "lag_p99_s",
        "lag_met",
    }
    assert (tmp_path / "ingest.json").exists() and (tmp_path / "ingest.png").stat().st_size > 0


def test_bench_store_measures_the_served_adapters_on_a_milvus_server(
    milvus_standalone_server: tuple[str, int], tmp_path: Path
) -> None:
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(3020, 64)).astype(np.float32)  # SYNTHETIC
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    sizes = StoreSizes(scales=(3000,), queries=20, bits=64, oversampling=8, itq_sample=1000)
    report = run_store_bench(
        milvus_standalone_server[0],
        vectors[:3000],
        vectors[3000:],
        lambda real, n: real[:n],
        sizes,
        tmp_path,
    )
    (scale,) = report["scales"]
    assert scale["vectors"] == 3000 and scale["dim"] == 64
    searches = scale["searches"]
    assert set(searches) == {"float_hnsw", "binary_by_id", "binary_cached"}
    for figures in searches.values():
        assert 0 < figures["p50_ms"] <= figures["p99_ms"]
    assert searches["float_hnsw"]["recall_at_10"] >= 0.9
    # the cache changes where the vectors come from, not the answer (float16: near ties aside)
    by_id, cached = searches["binary_by_id"], searches["binary_cached"]
    assert abs(by_id["recall_at_10"] - cached["recall_at_10"]) <= 0.02
    assert scale["cache_mb"] > 0
    assert set(scale["goal_met_by"]) <= set(searches)
    assert (tmp_path / "store.json").exists() and (tmp_path / "store.png").stat().st_size > 0
