"""Raw Milvus top-10: build an HNSW index over synthetic vectors, then measure single-query
latency, batched throughput and recall@10 against brute force for several ``ef`` values."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import psutil
from pymilvus import DataType, MilvusClient
from pymilvus.exceptions import MilvusException

from bench.judging import padded, recall_at_k
from bench.vectors import exact_top_k

EF_VALUES = (16, 32, 64, 128, 256)
# The data is static once loaded, so searches need no time-tick wait (Strong costs a Milvus
# server up to ~200 ms per search; the app's setting is STYLESTREAM_MILVUS_SEARCH_CONSISTENCY).
CONSISTENCY = "Bounded"
K = 10


def _hits(found: list[list[int]], truth: np.ndarray) -> np.ndarray:
    """Which of each query's top k are among its exact k nearest."""
    k = truth.shape[1]
    return padded(
        [[f in set(t.tolist()) for f in fs[:k]] for fs, t in zip(found, truth, strict=True)], k
    )


@dataclass
class EfResult:
    ef: int
    recall_at_10: float
    single_p50_ms: float
    single_p99_ms: float
    single_qps: float
    batched_qps: float
    batch_size: int


@dataclass
class BuildResult:
    backend: str
    vectors: int
    dim: int
    insert_seconds: float
    index_seconds: float
    rss_mb_empty: float
    rss_mb_loaded: float
    raw_vectors_mb: float
    index: dict[str, Any]
    settings: list[EfResult] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _rss_mb(pid: int) -> float:
    proc = psutil.Process(pid)
    total = proc.memory_info().rss
    for child in proc.children(recursive=True):
        total += child.memory_info().rss
    return float(total / 2**20)


def build_and_measure(
    backend: str,
    uri: str,
    pid: int,
    data: np.ndarray,
    queries: np.ndarray,
    *,
    batch: int = 10_000,
    single_queries: int = 100,
    log: Any = print,
) -> BuildResult:
    client = MilvusClient(uri=uri, timeout=600)
    name = f"bench_{len(data)}_{data.shape[1]}"
    if client.has_collection(name):
        client.drop_collection(name)
    rss_empty = _rss_mb(pid)
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=data.shape[1])
    client.create_collection(name, schema=schema, consistency_level="Strong")
    started = time.perf_counter()
    for start in range(0, len(data), batch):
        block = data[start : start + batch]
        client.insert(name, [{"id": start + i, "vec": v} for i, v in enumerate(block.tolist())])
        if start and start % 200_000 == 0:
            log(f"    {backend}: inserted {start} rows")
    client.flush(name)
    insert_s = time.perf_counter() - started
    log(f"    {backend}: {len(data)} rows in {insert_s:.0f}s; building HNSW ...")
    index_params = {"M": 16, "efConstruction": 128}
    params = client.prepare_index_params()
    params.add_index(field_name="vec", index_type="HNSW", metric_type="IP", params=index_params)
    started = time.perf_counter()
    try:
        client.create_index(name, params)
    except MilvusException as exc:
        # Milvus Lite builds inside the call; a long build can outlive the gRPC connection
        # (keepalive GOAWAY) and pymilvus's retry then finds the index already there.
        if "already exists" not in str(exc):
            raise
    _wait_for_index(client, name, len(data))
    client.load_collection(name)
    index_s = time.perf_counter() - started
    result = BuildResult(
        backend=backend,
        vectors=len(data),
        dim=data.shape[1],
        insert_seconds=round(insert_s, 1),
        index_seconds=round(index_s, 1),
        rss_mb_empty=round(rss_empty, 1),
        rss_mb_loaded=round(_rss_mb(pid), 1),
        raw_vectors_mb=round(data.nbytes / 2**20, 1),
        index={"type": "HNSW", "metric": "IP", **index_params, "search_consistency": CONSISTENCY},
    )
    truth = exact_top_k(data, queries, K)
    for ef in EF_VALUES:
        result.settings.append(_measure(client, name, queries, truth, ef, single_queries))
        log(f"    {backend} ef={ef}: {result.settings[-1]}")
    client.drop_collection(name)
    client.close()
    return result


def _wait_for_index(client: MilvusClient, name: str, rows: int, timeout_s: float = 3600) -> None:
    """Servers build indexes in the background: wait until every row is indexed."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        info = client.describe_index(name, "vec") or {}
        state = str(info.get("state", "Finished"))
        indexed = int(info.get("indexed_rows", rows) or 0)
        if state == "Finished" or indexed >= rows:
            return
        time.sleep(2)
    raise TimeoutError(f"index on {name} not built within {timeout_s}s")


def _search(client: MilvusClient, name: str, vectors: np.ndarray, ef: int) -> list[list[int]]:
    hits = client.search(
        name,
        data=vectors.tolist(),
        limit=K,
        anns_field="vec",
        search_params={"metric_type": "IP", "params": {"ef": max(ef, K)}},
        consistency_level=CONSISTENCY,
    )
    return [[int(h["id"]) for h in row] for row in hits]


def _measure(
    client: MilvusClient,
    name: str,
    queries: np.ndarray,
    truth: np.ndarray,
    ef: int,
    single_queries: int,
) -> EfResult:
    _search(client, name, queries[:5], ef)  # warm-up
    latencies = []
    for q in queries[:single_queries]:
        started = time.perf_counter()
        _search(client, name, q[None, :], ef)
        latencies.append(time.perf_counter() - started)
    batch_size = 100
    found: list[list[int]] = []  # recall from the batched answers: same index, same ef
    started = time.perf_counter()
    for start in range(0, len(queries), batch_size):
        found += _search(client, name, queries[start : start + batch_size], ef)
    batched_s = time.perf_counter() - started
    lat = np.array(latencies) * 1000
    return EfResult(
        ef=ef,
        recall_at_10=round(recall_at_k(_hits(found, truth)), 4),
        single_p50_ms=round(float(np.percentile(lat, 50)), 2),
        single_p99_ms=round(float(np.percentile(lat, 99)), 2),
        single_qps=round(float(len(lat) / (lat.sum() / 1000)), 1),
        batched_qps=round(len(queries) / batched_s, 1),
        batch_size=batch_size,
    )
