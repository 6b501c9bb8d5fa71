"""The capacity model: a load (events/s, catalogue size, queries/s) -> partitions, workers,
API replicas, Milvus query nodes and memory, from throughputs measured on this machine by
``bench ingest`` (per worker), ``bench serve`` (per API replica) and ``bench search`` (per
Milvus node, at the model's dimension where measured). Each replica is planned at
``utilisation`` of its measured peak, so queues stay short (at 70 % an M/M/1 queue waits ~2.3x
the service time; at 90 %, 9x)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# HNSW (M=16): each vector keeps ~2*M neighbour links of 4 bytes on its base layer
HNSW_LINK_BYTES = 2 * 16 * 4
FIELDS_BYTES = 600  # a product row's scalar fields (ids, category, colour, attributes JSON)


@dataclass(frozen=True)
class Measured:
    """Throughputs of one replica of each kind, as measured."""

    worker_products_per_s: float
    worker_rss_mb: float
    api_queries_per_s: float
    api_rss_mb: float
    milvus_queries_per_s: float  # one node, single queries at the catalogue size measured
    dim: int
    milvus_basis: str = ""  # what the Milvus figure was measured on

    @classmethod
    def from_results(cls, results: Path, dim: int) -> Measured:
        """From ``bench/results``' ingest.json, serve.json and search.json."""
        ingest = json.loads((results / "ingest.json").read_text())
        serve = json.loads((results / "serve.json").read_text())
        one = next((r for r in ingest.get("scaling", []) if r["workers"] == 1), None)
        worker_rate = one["products_per_s"] if one else ingest["burst"]["products_per_s"]
        worker_rss = max(one["worker_rss_mb"]) if one else 1024.0
        api = serve["api"]
        biggest = _milvus_server(results, dim)
        good = [s for s in biggest["settings"] if s["recall_at_10"] >= 0.95] or biggest["settings"]
        best = max(good, key=lambda s: s["single_qps"])
        return cls(
            worker_products_per_s=worker_rate,
            worker_rss_mb=worker_rss,
            api_queries_per_s=max(r["qps"] for r in api["closed_loop"]),
            api_rss_mb=float(api.get("api_rss_mb") or 1024.0),
            milvus_queries_per_s=best["single_qps"],
            dim=dim,
            milvus_basis=(
                f"standalone, {biggest['vectors']} x {biggest['dim']}-d, ef {best['ef']}, "
                f"recall@10 {best['recall_at_10']}, single queries on 2 cores"
            ),
        )


def _milvus_server(results: Path, dim: int) -> dict[str, Any]:
    """The largest Milvus server run of every ``search*.json`` (``bench search --out``), at
    the model's dimension where one was measured at it."""
    runs = [
        m
        for path in sorted(results.glob("search*.json"))
        for m in json.loads(path.read_text()).get("milvus", [])
        if m["backend"] == "milvus-standalone"
    ]
    if not runs:
        raise FileNotFoundError(f"no Milvus server run in {results}/search*.json")
    return max(runs, key=lambda m: (m["dim"] == dim, m["vectors"]))


@dataclass(frozen=True)
class Load:
    events_per_s: float
    catalogue: int
    queries_per_s: float
    utilisation: float = 0.7
    node_memory_gb: float = 16.0  # one Milvus query node's memory for segments
    milvus_replicas: int = 1  # in-memory replicas (2 for a node's loss without a reload)


def plan(load: Load, measured: Measured) -> dict[str, Any]:
    """Replicas of each kind for ``load``; every count rounds up."""
    u = load.utilisation
    workers = max(1, math.ceil(load.events_per_s / (measured.worker_products_per_s * u)))
    apis = max(1, math.ceil(load.queries_per_s / (measured.api_queries_per_s * u)))
    vector_bytes = measured.dim * 4 + HNSW_LINK_BYTES + FIELDS_BYTES
    segments_gb = load.catalogue * vector_bytes * load.milvus_replicas / 2**30
    by_memory = math.ceil(segments_gb / (load.node_memory_gb * u))
    by_queries = math.ceil(load.queries_per_s / (measured.milvus_queries_per_s * u))
    nodes = max(1, by_memory, by_queries)
    return {
        "load": asdict(load),
        "measured": asdict(measured),
        # partitions cap the workers of one group: twice the need leaves room to scale out
        # without repartitioning (which would move keys between partitions)
        "partitions": max(4, 2 * workers),
        "workers": workers,
        "api_replicas": apis,
        "milvus_query_nodes": nodes,
        "milvus_nodes_by": {"memory": by_memory, "queries": by_queries},
        "memory_gb": {
            "milvus_segments": round(segments_gb, 1),
            "workers": round(workers * measured.worker_rss_mb / 1024, 1),
            "api": round(apis * measured.api_rss_mb / 1024, 1),
        },
    }
