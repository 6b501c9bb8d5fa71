"""``stylestream bench store``: the vector store at scale through the served adapters, at the
model's real dimension, on a Milvus standalone server: float HNSW (stores/milvus.py), binary
PCA+ITQ codes with the rerank's vectors read from Milvus by id, and the same with them kept in
the process (stores/binary.py + stores/vector_cache.py). Single-query p50/p99 and recall@10
against exact search over the same vectors; JSON and a PNG.

The cached figure is a long-running API's steady state whose cache budget holds the catalogue
(``cache_mb`` in the report): the cache is filled from the rows written, as the reads of its
first searches would fill it."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.binary import report_header
from bench.vectors import exact_top_k
from config import assembly
from config.settings import Settings
from stores.base import IndexRow
from stores.binary import BinaryRerankIndex
from stores.codes import CodeIndexConfig, MilvusCodeIndex
from stores.milvus import MilvusConfig, MilvusVectorIndex
from stores.vector_cache import VectorCache
from training.binary_codes import fit_itq

P99_GOAL_MS = 20.0
RECALL_GOAL = 0.95
CHUNK = 5000


@dataclass(frozen=True)
class StoreSizes:
    scales: tuple[int, ...] = (100_000, 1_000_000)
    queries: int = 200
    bits: int = 1024
    oversampling: int = 16
    itq_sample: int = 8000
    nprobe_share: float = 0.025  # of the binary IVF lists, as `bench binary`


def _rows(vectors: np.ndarray, first: int) -> list[IndexRow]:
    return [
        IndexRow(f"p{first + i}", version=1, category="c", embedding=v)
        for i, v in enumerate(vectors)
    ]


def _wait_indexed(client: Any, name: str, field: str, rows: int, timeout_s: float) -> None:
    """A server indexes sealed segments in the background; searches before it is done scan."""
    deadline = time.monotonic() + timeout_s
    while int((client.describe_index(name, field) or {}).get("indexed_rows", 0) or 0) < rows:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name}.{field}: not indexed within {timeout_s:.0f}s")
        time.sleep(5)
    client.release_collection(name)
    client.load_collection(name)


def _timed(search: Callable[[np.ndarray], list[str]], queries: np.ndarray, truth: np.ndarray
           ) -> dict[str, float]:  # fmt: skip
    seconds, recall = [], []
    for query, want in zip(queries, truth, strict=True):
        started = time.perf_counter()
        found = search(query[None, :])
        seconds.append(time.perf_counter() - started)
        recall.append(len({int(p[1:]) for p in found} & set(want.tolist())) / len(want))
    ms = np.asarray(seconds) * 1000
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "recall_at_10": round(float(np.mean(recall)), 4),
    }


@contextmanager
def _collections(uri: str, n: int, dim: int, bits: int, ivf: CodeIndexConfig) -> Iterator[Any]:
    config = MilvusConfig(uri=uri, search_consistency="Bounded", batch_size=2000)
    floats = MilvusVectorIndex(config, f"store_bench_{n}", dim)
    codes = MilvusCodeIndex(config, f"store_bench_{n}_codes", bits, ivf)
    for c in (floats, codes):
        c.drop()
        c.ensure()
    try:
        yield floats, codes
    finally:
        for c in (floats, codes):
            c.drop()
            c.close()


def measure_scale(
    uri: str,
    vectors: np.ndarray,
    queries: np.ndarray,
    sizes: StoreSizes,
    log: Callable[[str], None],
) -> dict[str, Any]:
    n, dim = vectors.shape
    nlist = min(4096, max(16, int(4 * np.sqrt(n))))
    nprobe = max(1, round(nlist * sizes.nprobe_share))
    coder = fit_itq(vectors[: sizes.itq_sample], sizes.bits)
    truth = exact_top_k(vectors, queries, 10)
    ivf = CodeIndexConfig(nlist=nlist, nprobe=nprobe)
    with _collections(uri, n, dim, sizes.bits, ivf) as (floats, codes):
        index = BinaryRerankIndex(floats, codes, coder, sizes.oversampling, cache=None)
        started = time.perf_counter()
        for first in range(0, n, CHUNK):
            index.upsert(_rows(vectors[first : first + CHUNK], first))
        floats.flush()
        codes.client.flush(codes.collection)
        fill_s = time.perf_counter() - started
        log(f"[store] {n} rows written in {fill_s:.0f}s; waiting for the indexes")
        _wait_indexed(floats.client, floats.collection, "embedding", n, 7200)
        _wait_indexed(codes.client, codes.collection, "code", n, 7200)
        index_s = time.perf_counter() - started - fill_s

        def ids(search: Callable[[np.ndarray], list[list[Any]]]) -> Callable[..., list[str]]:
            return lambda q: [h.product_id for h in search(q)[0]]

        results = {"float_hnsw": _timed(ids(lambda q: floats.search(q, 10)), queries, truth)}
        results["binary_by_id"] = _timed(ids(lambda q: index.search(q, 10)), queries, truth)
        cache = VectorCache(2**62)
        for first in range(0, n, CHUNK):
            for row in _rows(vectors[first : first + CHUNK], first):
                cache.put(row)
        index.cache = cache
        results["binary_cached"] = _timed(ids(lambda q: index.search(q, 10)), queries, truth)
    for name, figures in results.items():
        log(f"[store] {n}: {name} {figures}")
    return {
        "vectors": n,
        "dim": dim,
        "write_s": round(fill_s, 1),
        "index_s": round(index_s, 1),
        "binary": {
            "bits": sizes.bits,
            "oversampling": sizes.oversampling,
            "nlist": nlist,
            "nprobe": nprobe,
        },
        "cache_mb": round(cache.bytes / 2**20, 1),
        "searches": results,
        "goal_met_by": [
            k
            for k, v in results.items()
            if v["p99_ms"] <= P99_GOAL_MS and v["recall_at_10"] >= RECALL_GOAL
        ],
    }


def run_store_bench(
    uri: str,
    real: np.ndarray,
    queries: np.ndarray,
    fill: Callable[[np.ndarray, int], np.ndarray],
    sizes: StoreSizes,
    out_dir: Path,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """``real``: real embeddings, ``fill`` makes ``n`` vectors of them (SYNTHETIC past them)."""
    header = report_header(len(queries), len(real))
    report = {
        **header,
        "sizes": asdict(sizes),
        "milvus": uri,
        "goal": {"p99_ms": P99_GOAL_MS, "recall_at_10": RECALL_GOAL},
        "scales": [measure_scale(uri, fill(real, n), queries, sizes, log) for n in sizes.scales],
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "store.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, out_dir / "store.png")
    return report


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for scale, marker in zip(report["scales"], "os^D", strict=False):
        for name, figures in scale["searches"].items():
            ax.scatter(figures["p99_ms"], figures["recall_at_10"], marker=marker)
            at = (figures["p99_ms"], figures["recall_at_10"])
            ax.annotate(f"{name} {scale['vectors']:,}", at, fontsize=7)
    ax.axvline(P99_GOAL_MS, color="green", ls=":")
    ax.axhline(RECALL_GOAL, color="green", ls=":")
    ax.set_xscale("log")
    ax.set_xlabel("single-query p99 (ms, log)")
    ax.set_ylabel("recall@10 vs exact")
    ax.set_title("The served vector store at the model's dimension (Milvus standalone)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_store(
    settings: Settings, sizes: StoreSizes, out_dir: Path, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """The whole bench on its own server under the data folder (vectors: cached real
    embeddings of the base model, SYNTHETIC fill past 60,000)."""
    from bench.binary_data import filled, real_embeddings
    from deploy.local.milvus_server import milvus_standalone
    from deploy.local.process import free_port
    from processors.embedding import OnnxEmbedder

    embedder = OnnxEmbedder(assembly.base_model_file(settings), batch_size=64)
    cache = settings.data_dir / "bench-cache"
    real = real_embeddings(embedder, cache, "train", min(60_000, max(sizes.scales)), log)
    queries = real_embeddings(embedder, cache, "t10k", max(sizes.queries, 200), log)
    queries = queries[: sizes.queries]
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    # the server's files go with it: at 1M x 1280-d they reach ~20 GB (segments, WAL, indexes)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix="bench-milvus-store-", dir=settings.data_dir) as tmp,
        milvus_standalone(Path(tmp), free_port()) as (uri, _),
    ):
        report = run_store_bench(uri, real, queries, filled, sizes, out_dir, log)
    report["model_version"] = embedder.model_version
    return report
