"""The binary-index bench on a real Milvus standalone server, at a small scale: the Hamming
index with a float rerank against float FLAT and HNSW, every figure the report promises."""

from __future__ import annotations

import numpy as np
import pytest

from bench.binary import OVERSAMPLING, BinaryBenchSizes, run_binary_bench
from bench.binary_data import filled
from tests.unit.test_binary_codes import synthetic_embeddings

pytestmark = pytest.mark.services


def test_binary_codes_with_a_float_rerank_find_the_exact_neighbours(
    milvus_standalone_server: tuple[str, int],
) -> None:
    uri = milvus_standalone_server[0]  # shared: no restarts, so no memory figures
    vectors = synthetic_embeddings(2600, 256)  # SYNTHETIC, as in the codes' unit test
    real, queries = vectors[:2000], vectors[2000:2060]
    sizes = BinaryBenchSizes(scales=(3000,), queries=60, single_queries=20, itq_bits=(128, 64),
                             fit_sample=2000, nprobe_share=0.3, settle_s=0.2)  # fmt: skip
    noise = np.random.default_rng(5).normal(0, 0.01, queries.shape).astype(np.float32)
    more = {"jittered": queries + noise}  # another query set: judged on recall only
    report = run_binary_bench(uri, real, queries, sizes, filled, lambda m: None, more)
    scale = report["scales"][0]
    assert scale["vectors"] == 3000 and scale["float_flat"]["recall_at_10"] == 1.0
    assert scale["float_flat"]["jittered_recall_at_10"] == 1.0
    assert 0.5 < scale["float_hnsw"]["recall_at_10"] <= 1.0
    assert "index_rss_mb" not in scale["float_hnsw"]
    kinds = {(c["kind"], c["bits"]): c for c in scale["codes"]}
    assert sorted(kinds) == [("pca-itq", 64), ("pca-itq", 128), ("sign", 256)]
    assert kinds["sign", 256]["bytes_per_vector"] == 32
    assert kinds["pca-itq", 128]["bytes_per_vector"] == 16
    assert kinds["sign", 256]["index"]["nprobe"] == 66  # 0.3 of nlist 219
    for code in kinds.values():
        settings = code["settings"]
        assert [s["oversampling"] for s in settings] == list(OVERSAMPLING)
        recalls = [s["recall_at_10"] for s in settings]
        assert recalls[-1] >= 0.9 and recalls[-1] >= recalls[0]  # oversampling pays
        assert settings[-1]["jittered_recall_at_10"] >= 0.85
        for s in settings:  # the same candidates reranked from either float source
            assert (
                abs(s["float16_in_process"]["recall_at_10"] - s["milvus_by_id"]["recall_at_10"])
                <= 0.05
            )
            assert s["float16_in_process"]["p99_ms"] > 0 and s["milvus_by_id"]["p50_ms"] > 0
    assert abs(kinds["pca-itq", 128]["share_of_float32"] - 16 / 1024) < 1e-4
