"""``stylestream bench serve``: the search API against its own encoder, in one run.

- the baseline: the base model alone (ONNX Runtime, the served settings), batched and one
  image at a time, on the held-out query photos;
- the API (a child process on the demo's index): closed-loop clients at several
  concurrencies (throughput, p50/p99, errors), then an open loop at half the goal's rate
  (Poisson arrivals; latency counted from each request's scheduled time, so a slow answer
  cannot hide the requests queued behind it).
JSON and a PNG plot.
"""

from __future__ import annotations

import json
import os
import platform
import queue
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from bench.api_load import Uploader, multipart, run_load
from bench.catalog import held_out_queries
from bench.processes import Process
from bench.search import ensure_indexed
from bench.simulator import png_bytes
from config import assembly
from config.settings import Settings
from deploy.local.process import free_port, wait_until
from processors.embedding import OnnxEmbedder
from training.datasets import to_rgb

GOAL_SHARE = 0.8  # of the encoder's batched img/s: the API's throughput goal


@dataclass(frozen=True)
class ServeSizes:
    concurrencies: tuple[int, ...] = (1, 2, 4, 8, 16)
    seconds: float = 20.0
    open_loop_seconds: float = 30.0
    queries: int = 200
    products: int = 2000  # indexed first when the index is empty


def encoder_alone(settings: Settings, images: Sequence[np.ndarray]) -> dict[str, Any]:
    """The served base model by itself: the ceiling the API is measured against."""
    path = assembly.base_model_file(settings)
    embedder = OnnxEmbedder(path, settings.embed_batch_size, settings.onnx_threads)
    rgb = [to_rgb(g) if g.ndim == 2 else g for g in images]
    embedder.embed(rgb[:8])  # warm-up
    started = time.perf_counter()
    rounds = 0
    while time.perf_counter() - started < 5 or rounds < 2:
        embedder.embed(rgb)
        rounds += 1
    batched = rounds * len(rgb) / (time.perf_counter() - started)
    singles = []
    for image in rgb[:100]:
        t = time.perf_counter()
        embedder.embed([image])
        singles.append(time.perf_counter() - t)
    return {
        "model_version": embedder.model_version,
        "image_size": embedder.card.image_size,
        "batched_images_per_s": round(batched, 1),
        "batch": settings.embed_batch_size,
        "single_images_per_s": round(1 / float(np.mean(singles)), 1),
        "single_p50_ms": round(float(np.median(singles)) * 1000, 2),
        "onnx_threads": settings.onnx_threads or "runtime default",
    }


def open_loop(
    port: int, bodies: Sequence[tuple[bytes, str]], rate: float, seconds: float, seed: int = 0
) -> dict[str, Any]:
    """Poisson arrivals at ``rate``/s for ``seconds``; each request's latency runs from its
    scheduled send time (queueing in the client counts: no coordinated omission)."""
    rng = np.random.default_rng(seed)
    gaps = rng.exponential(1 / rate, size=int(rate * seconds * 1.5) + 10)
    times = np.cumsum(gaps)
    times = times[times < seconds]
    todo: queue.Queue[tuple[int, float] | None] = queue.Queue()
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def sender() -> None:
        uploader = Uploader("127.0.0.1", port)
        while (job := todo.get()) is not None:
            i, due = job
            ok, detail = uploader.post(*bodies[i % len(bodies)])
            with lock:
                (latencies.append(time.perf_counter() - due) if ok else errors.append(detail))
        uploader.close()

    senders = [threading.Thread(target=sender) for _ in range(32)]
    for t in senders:
        t.start()
    start = time.perf_counter()
    for i, at in enumerate(times):
        delay = start + at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        todo.put((i, start + at))
    for _ in senders:
        todo.put(None)
    for t in senders:
        t.join()
    lat = np.array(latencies or [0.0]) * 1000
    return {
        "rate_per_s": round(rate, 1),
        "seconds": seconds,
        "requests": len(times),
        "errors": len(errors),
        "error_examples": sorted(set(errors))[:5],
        "p50_ms": round(float(np.percentile(lat, 50)), 1),
        "p99_ms": round(float(np.percentile(lat, 99)), 1),
    }


def batch_sizes(port: int) -> dict[str, float]:
    """The API's mean search batch size, from its /metrics."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    found = {}
    for line in text.splitlines():
        for key in ("sum", "count"):
            if line.startswith(f"stylestream_api_search_batch_size_{key} "):
                found[key] = float(line.split()[1])
    count = found.get("count", 0.0)
    return {"batches": count, "mean_batch": round(found.get("sum", 0.0) / count, 2) if count else 0}


def bench_api_load(
    settings: Settings, sizes: ServeSizes, goal: float, log: Callable[[str], None]
) -> dict[str, Any]:
    products = ensure_indexed(settings, log, sizes.products)
    port = free_port()
    env = {**os.environ, "STYLESTREAM_API_PORT": str(port), "STYLESTREAM_API_RATE_PER_S": "0"}
    proc = Process(["api"], settings.data_dir / "bench" / "api-serve.log", env)
    try:
        wait_until(lambda: api_ready(port), 90, "search API")
        queries = held_out_queries(settings.data_dir / "demo", sizes.queries)
        images = [png_bytes(img) for img in queries.images]
        closed = []
        for c in sizes.concurrencies:
            log(f"[serve] {c} clients for {sizes.seconds:.0f} s against {products} products")
            before = batch_sizes(port)
            result = asdict(run_load("127.0.0.1", port, images, c, sizes.seconds))
            after = batch_sizes(port)
            batches = after["batches"] - before["batches"]
            result["mean_batch"] = round(result["requests"] / batches, 2) if batches else 0
            closed.append(result)
        rate = goal / 2
        log(f"[serve] open loop at {rate:.0f} req/s for {sizes.open_loop_seconds:.0f} s")
        bodies = [multipart(img, 10) for img in images]
        half = open_loop(port, bodies, rate, sizes.open_loop_seconds)
        rss = psutil.Process(proc.proc.pid).memory_info().rss / 2**20
    finally:
        proc.stop()
    return {
        "products_indexed": products,
        "endpoint": "POST /v1/search/upload (k=10)",
        "closed_loop": closed,
        "half_load": half,
        "api_rss_mb": round(rss, 1),
        "milvus_uri": settings.milvus_uri,
    }


def api_ready(port: int) -> bool:
    """The API child answers /readyz (an error while it starts is ``wait_until``'s "not yet")."""
    return bool(urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2))


def run_serve_bench(
    settings: Settings, sizes: ServeSizes, out_dir: Path, log: Callable[[str], None] = print
) -> dict[str, Any]:
    started = time.monotonic()
    queries = held_out_queries(settings.data_dir / "demo", sizes.queries)
    log("[serve] the encoder alone")
    encoder = encoder_alone(settings, list(queries.images))
    goal = GOAL_SHARE * encoder["batched_images_per_s"]
    api = bench_api_load(settings, sizes, goal, log)
    best = max(api["closed_loop"], key=lambda r: r["qps"])
    report = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "note": "the load clients run on the same cores as the API, Milvus and Postgres",
        "encoder": encoder,
        "api": api,
        "done_when": {
            "throughput_goal_per_s": round(goal, 1),
            "best_throughput_per_s": best["qps"],
            "throughput_share_of_encoder": round(best["qps"] / encoder["batched_images_per_s"], 3),
            "throughput_met": best["qps"] >= goal and best["errors"] == 0,
            "half_load_p99_ms": api["half_load"]["p99_ms"],
            "half_load_met": api["half_load"]["p99_ms"] <= 50 and api["half_load"]["errors"] == 0,
        },
        "wall_seconds": round(time.monotonic() - started, 1),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "serve.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, out_dir / "serve.png")
    return report


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    closed = report["api"]["closed_loop"]
    xs = [r["concurrency"] for r in closed]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    left.plot(xs, [r["qps"] for r in closed], marker="o", label="API req/s")
    encoder = report["encoder"]["batched_images_per_s"]
    left.axhline(encoder, color="grey", ls="--", label=f"encoder alone, batched ({encoder:.0f}/s)")
    goal = report["done_when"]["throughput_goal_per_s"]
    left.axhline(goal, color="green", ls=":", label=f"goal {GOAL_SHARE}x encoder")
    left.set_xscale("log", base=2)
    left.set_xlabel("concurrent clients")
    left.set_ylabel("requests / s")
    left.legend(fontsize=8)
    right.plot(xs, [r["p99_ms"] for r in closed], marker="o", label="p99 (closed loop)")
    right.plot(xs, [r["p50_ms"] for r in closed], marker=".", label="p50 (closed loop)")
    half = report["api"]["half_load"]
    right.axhline(50, color="green", ls=":", label="goal at half load: 50 ms")
    right.scatter(
        [1],
        [half["p99_ms"]],
        color="red",
        zorder=3,
        label=f"p99 open loop at {half['rate_per_s']}/s",
    )
    right.set_xscale("log", base=2)
    right.set_yscale("log")  # an overloaded open loop's queueing is orders larger
    right.set_xlabel("concurrent clients")
    right.set_ylabel("latency (ms, log)")
    right.legend(fontsize=8)
    fig.suptitle("Search API (POST /v1/search/upload) against its encoder, one run")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
