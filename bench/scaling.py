"""Scale-out checked: 1, 2, 3... streaming workers in one consumer group on the partitioned
products topic, each count given the same burst, products/s and memory measured. The figures
feed the capacity model (bench/capacity.py)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil

from bench.catalog import fashion_mnist_catalogue
from bench.processes import Process, wait_or_fail
from config.kafka import kafka_admin
from config.settings import Settings
from deploy.local.process import free_port

Streamed = Callable[[Sequence[Any], int, list[Process]], dict[str, Any]]


def group_members(settings: Settings) -> int:
    """Members of the workers' consumer group (0 while it is rebalancing or empty)."""
    admin = kafka_admin(settings)
    try:
        group = admin.describe_groups([settings.app_id])[settings.app_id]
    finally:
        admin.close()
    return len(group["members"]) if group["group_state"] == "Stable" else 0


def _rss_mb(workers: Sequence[Process]) -> list[float]:
    sizes = []
    for w in workers:
        try:
            sizes.append(round(psutil.Process(w.proc.pid).memory_info().rss / 2**20, 1))
        except psutil.NoSuchProcess:
            sizes.append(0.0)
    return sizes


def one_count(
    settings: Settings,
    env: Mapping[str, str],
    data: Path,
    count: int,
    burst: int,
    version: int,
    streamed: Streamed,
) -> dict[str, Any]:
    """``count`` workers join one group; once it is stable and warm, a burst of ``burst``
    products goes through them."""
    workers = [
        Process(
            ["worker", "--loglevel", "warning"],
            data / f"scale-{count}-{i}.log",
            {**env, "STYLESTREAM_METRICS_PORT": str(free_port())},
        )
        for i in range(count)
    ]
    try:
        wait_or_fail(lambda: group_members(settings) == count, 300, "group", workers)
        # every worker's models loaded: warm events reach all partitions
        warm = fashion_mnist_catalogue(data, 16 * settings.topic_partitions, version=version - 1)
        streamed(warm.events, version - 1, workers)
        events = fashion_mnist_catalogue(data, burst, version=version, seed=count).events
        result = streamed(events, version, workers)
        rss = _rss_mb(workers)
    finally:
        for w in workers:
            w.stop()
    return {
        "workers": count,
        "partitions": settings.topic_partitions,
        "products": burst,
        "seconds": result["seconds"],
        "products_per_s": result["products_per_s"],
        "lag_p99_s": result["lag_p99_s"],
        "worker_rss_mb": rss,
    }


def run_scaling(
    settings: Settings,
    env: Mapping[str, str],
    data: Path,
    counts: Sequence[int],
    burst: int,
    streamed: Streamed,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Each worker count in turn (the same burst size, fresh product ids each time)."""
    results = []
    for count in counts:
        if count > settings.topic_partitions:
            raise ValueError(f"{count} workers on {settings.topic_partitions} partitions")
        version = int(time.time() * 1000)
        log(f"[ingest] {count} worker(s) in one group, a burst of {burst} products")
        results.append(one_count(settings, env, data, count, burst, version, streamed))
    base = results[0]["products_per_s"] if results else 0.0
    for r in results:
        r["speedup"] = round(r["products_per_s"] / base, 2) if base else None
    return results
