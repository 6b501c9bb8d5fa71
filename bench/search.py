"""``stylestream bench search``: Milvus top-10 at several index sizes on Milvus Lite and a Milvus
standalone server, and the HTTP API under concurrent load, all in one run; JSON and a PNG plot.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from bench.api_load import run_load
from bench.catalog import fashion_mnist_catalogue, held_out_queries, with_image_roots
from bench.milvus_bench import build_and_measure
from bench.processes import Process
from bench.simulator import png_bytes
from bench.vectors import clustered
from config import assembly
from config.settings import Settings
from deploy.local import services
from deploy.local.milvus import MilvusLiteService
from deploy.local.milvus_server import milvus_standalone
from deploy.local.process import free_port, wait_until
from processors.products import RawEvent
from schemas.events import encode_event
from stores.migrate import upgrade


@contextmanager
def milvus_lite_server(data_dir: Path) -> Iterator[tuple[str, int]]:
    """A throwaway Milvus Lite server: the dev service, on its own folder and a free port."""
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    service = MilvusLiteService(Settings(data_dir=data_dir, milvus_lite_port=port, milvus_uri=uri))
    service.up()
    try:
        pid = service.process().pid()
        assert pid is not None
        yield uri, pid
    finally:
        service.down()


def _backend(name: str, data_dir: Path) -> Any:
    if name == "milvus-lite":
        return milvus_lite_server(data_dir)
    return milvus_standalone(data_dir, free_port())


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    return {p: version(p) for p in ("pymilvus", "milvus-lite", "milvus")}


def bench_milvus(
    sizes: list[int], dim: int, n_queries: int, backends: list[str], log: Callable[[str], None]
) -> list[dict[str, Any]]:
    results = []
    biggest = clustered(max(sizes) + n_queries, dim, seed=7)
    queries = biggest[-n_queries:]
    for backend in backends:
        with (
            tempfile.TemporaryDirectory(prefix=f"bench-{backend}-") as tmp,
            _backend(backend, Path(tmp)) as (uri, pid),
        ):
            for n in sizes:
                log(f"[milvus] {backend}: {n} x {dim} synthetic vectors")
                result = build_and_measure(backend, uri, pid, biggest[:n], queries, log=log)
                results.append(result.as_dict())
    return results


def ensure_indexed(settings: Settings, log: Callable[[str], None], n: int = 2000) -> int:
    """The API load needs an index: the demo's, or the catalogue indexed here without Kafka."""
    services.up(settings)
    upgrade(settings.pg_dsn)
    built = assembly.build(with_image_roots(settings, settings.data_dir / "demo"))
    try:
        count = built.repo.count_products()
        if count == 0:
            log(f"[api] index is empty: indexing {n} catalogue products directly")
            cat = fashion_mnist_catalogue(settings.data_dir / "demo", n)

            for start in range(0, len(cat.events), 200):
                raws = [RawEvent(encode_event(e)) for e in cat.events[start : start + 200]]
                built.writer.write(built.processor.process(raws))
            for target in built.targets.writes():  # unflushed rows search ~30x slower
                target.index.flush()
            count = built.repo.count_products()
        return count
    finally:
        built.close()


def bench_api(
    settings: Settings, seconds: float, concurrency: int, log: Callable[[str], None]
) -> dict[str, Any]:

    products = ensure_indexed(settings, log)
    port = free_port()
    env = {**os.environ, "STYLESTREAM_API_PORT": str(port)}
    proc = Process(["api"], settings.data_dir / "bench" / "api.log", env)
    try:

        def ready() -> bool:
            return bool(urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2))

        wait_until(ready, 60, "search API")
        queries = held_out_queries(settings.data_dir / "demo", 200)
        images = [png_bytes(img) for img in queries.images]
        log(f"[api] {concurrency} clients for {seconds:.0f}s against {products} products")
        result = run_load("127.0.0.1", port, images, concurrency, seconds)
        rss = psutil.Process(proc.proc.pid).memory_info().rss / 2**20
    finally:
        proc.stop()
    return {
        **asdict(result),
        "products_indexed": products,
        "api_rss_mb": round(rss, 1),
        "milvus_uri": settings.milvus_uri,
        "endpoint": "POST /v1/search/upload (k=10)",
        "note": "client threads run on the same 2 cores as the API and Milvus",
    }


def plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for r in results:
        xs = [s["recall_at_10"] for s in r["settings"]]
        ys = [s["single_p50_ms"] for s in r["settings"]]
        ax.plot(xs, ys, marker="o", label=f"{r['backend']} {r['vectors']:,} x {r['dim']}")
        for s, x, y in zip(r["settings"], xs, ys, strict=True):
            ax.annotate(
                f"ef={s['ef']}", (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points"
            )
    ax.set_xlabel("recall@10 vs brute force")
    ax.set_ylabel("single-query p50 latency (ms, log)")
    ax.set_yscale("log")
    ax.set_title("Milvus HNSW (M=16, efConstruction=128), synthetic vectors")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_search_bench(
    settings: Settings,
    sizes: list[int],
    dim: int,
    n_queries: int,
    backends: list[str],
    api_seconds: float,
    concurrency: int,
    out_dir: Path,
    log: Callable[[str], None],
) -> dict[str, Any]:
    started = time.monotonic()
    out_dir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30),
            "python": platform.python_version(),
        },
        "versions": _versions(),
        "vectors": f"synthetic: a 1000-centre Gaussian mixture on the unit sphere, dim {dim} "
        "(not product embeddings); queries are held-out draws",
        "queries": n_queries,
        "milvus": bench_milvus(sizes, dim, n_queries, backends, log),
    }
    if api_seconds > 0:
        report["api"] = bench_api(settings, api_seconds, concurrency, log)
    png = out_dir / "search-latency-recall.png"
    plot(report["milvus"], png)
    report["plot"] = str(png)
    report["wall_seconds"] = round(time.monotonic() - started, 1)
    (out_dir / "search.json").write_text(json.dumps(report, indent=2))
    return report
