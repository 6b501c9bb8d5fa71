"""``stylestream bench``, ``demo`` and ``simulate``: benchmarks (JSON out, baselines in the
same run), the main job end to end, and SIMULATED shoppers."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import click
import httpx

from bench.binary import BinaryBenchSizes
from bench.binary import run as run_binary
from bench.capacity import Load, Measured, plan
from bench.catalog import ensure_model
from bench.chaos import ChaosSizes, run_chaos
from bench.click_heads import run_heads_bench, write_report
from bench.click_loop import LoopSizes, query_pool, run_click_loop
from bench.demo import run_demo
from bench.ingest import IngestSizes, run_ingest_bench
from bench.search import run_search_bench
from bench.serve import ServeSizes, run_serve_bench
from bench.simulator import simulate as run_simulation
from bench.store import StoreSizes, run_store
from bench.text_serve import TextServeSizes, run_text_serve_bench
from config import assembly
from config.settings import Settings


@click.group()
def bench() -> None:
    """Benchmarks (JSON out; baselines in the same run)."""


@bench.command("search")
@click.option("--sizes", default="100000,1000000", show_default=True, help="Index sizes.")
@click.option("--dim", default=128, show_default=True, help="Synthetic vector dimension.")
@click.option("--queries", default=200, show_default=True)
@click.option("--backends", default="milvus-lite,milvus-standalone", show_default=True)
@click.option("--api-seconds", default=60.0, show_default=True, help="0 skips the API load.")
@click.option("--concurrency", default=16, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=Path("bench/results"))
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def bench_search(
    settings: Settings,
    sizes: str,
    dim: int,
    queries: int,
    backends: str,
    api_seconds: float,
    concurrency: int,
    out: Path,
    as_json: bool,
) -> None:
    """Milvus top-10 latency/recall at each size on Lite and a server, and the API under load."""
    report = run_search_bench(
        settings,
        [int(s) for s in sizes.split(",")],
        dim,
        queries,
        backends.split(","),
        api_seconds,
        concurrency,
        out,
        log=lambda m: click.echo(m, err=True),
    )
    click.echo(json.dumps(report, indent=None if as_json else 2))


@bench.command("serve")
@click.option("--concurrency", default="1,2,4,8,16", show_default=True, help="Closed-loop clients.")
@click.option("--seconds", default=20.0, show_default=True, help="Per concurrency.")
@click.option("--open-seconds", default=30.0, show_default=True, help="The half-load open loop.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("bench/results"))
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def bench_serve(
    settings: Settings,
    concurrency: str,
    seconds: float,
    open_seconds: float,
    out: Path,
    as_json: bool,
) -> None:
    """The search API's throughput and latency against its encoder alone, in one run."""
    ensure_model(settings)
    sizes = ServeSizes(
        concurrencies=tuple(int(c) for c in concurrency.split(",")),
        seconds=seconds,
        open_loop_seconds=open_seconds,
    )
    report = run_serve_bench(settings, sizes, out, log=lambda m: click.echo(m, err=True))
    click.echo(json.dumps(report, indent=None if as_json else 2))


@bench.command("text")
@click.option("--concurrency", default="1,2,4", show_default=True, help="Closed-loop clients.")
@click.option("--seconds", default=20.0, show_default=True, help="Per concurrency.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("bench/results"))
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def bench_text(
    settings: Settings, concurrency: str, seconds: float, out: Path, as_json: bool
) -> None:
    """Text queries through the API (p50/p99 by clients) against Postgres's full-text query
    alone, in one run (JSON + PNG, text-serve.*)."""
    ensure_model(settings)
    sizes = TextServeSizes(
        concurrencies=tuple(int(c) for c in concurrency.split(",")), seconds=seconds
    )
    report = run_text_serve_bench(settings, sizes, out, log=lambda m: click.echo(m, err=True))
    click.echo(json.dumps(report, indent=None if as_json else 2))


@bench.command("ingest")
@click.option("--burst", default=2000, show_default=True, help="Products in the burst.")
@click.option("--rates", default="25,50", show_default=True, help="Steady event rates (per s).")
@click.option("--steady-seconds", default=30.0, show_default=True)
@click.option(
    "--workers", default="1,2,3", show_default=True, help="Scale-out check; empty skips it."
)
@click.option("--out", type=click.Path(path_type=Path), default=Path("bench/results"))
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def bench_ingest(
    settings: Settings,
    burst: int,
    rates: str,
    steady_seconds: float,
    workers: str,
    out: Path,
    as_json: bool,
) -> None:
    """The streaming worker's products/s against a plain batch script, produce -> searchable
    lag at steady event rates, and 1..N workers on the partitioned topic, in one run."""
    sizes = IngestSizes(
        burst,
        tuple(float(r) for r in rates.split(",")),
        steady_seconds,
        tuple(int(w) for w in workers.split(",") if w.strip()),
    )
    report = run_ingest_bench(settings, sizes, out, log=lambda m: click.echo(m, err=True))
    click.echo(json.dumps(report, indent=None if as_json else 2))


@bench.command("binary")
@click.option(
    "--scales", default="100000", show_default=True, help="Vector counts, comma-separated."
)
@click.option("--queries", default=1000, show_default=True)
@click.option(
    "--itq-bits", default="512,1024", show_default=True, help="PCA+ITQ bits, comma-separated."
)
@click.option(
    "--nprobe-share",
    default=0.025,
    show_default=True,
    help="Share of the binary IVF lists probed (the same share at every scale).",
)
@click.option("--out", type=click.Path(path_type=Path), default=Path("bench/results"))
@click.option("--json", "as_json", is_flag=True, help="One JSON line on stdout.")
@click.pass_obj
def bench_binary(
    settings: Settings,
    scales: str,
    queries: int,
    itq_bits: str,
    nprobe_share: float,
    out: Path,
    as_json: bool,
) -> None:
    """Binary codes (sign; PCA+ITQ) in a Hamming index with a float rerank, against float FLAT
    and HNSW, on a private Milvus standalone server: recall@10, p50/p99, memory."""
    ensure_model(settings)
    sizes = BinaryBenchSizes(
        scales=tuple(int(s) for s in scales.split(",")),
        queries=queries,
        single_queries=min(200, queries),
        itq_bits=tuple(int(b) for b in itq_bits.split(",")),
        nprobe_share=nprobe_share,
    )
    report = run_binary(
        settings.models_path,
        settings.image_size,
        settings.data_dir,
        sizes,
        out,
        log=lambda m: click.echo(m, err=True),
    )
    click.echo(json.dumps(report, indent=None if as_json else 2))


@bench.command("store")
@click.option("--scales", default="100000,1000000", show_default=True, help="Vector counts.")
@click.option("--queries", default=200, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=Path("bench/results"))
@click.option("--json", "as_json", is_flag=True, help="One JSON line on stdout.")
@click.pass_obj
def bench_store(settings: Settings, scales: str, queries: int, out: Path, as_json: bool) -> None:
    """The served vector store at the model's dimension on a private Milvus standalone server:
    float HNSW, binary codes reranked from Milvus by id, and from the process's cache."""
    ensure_model(settings)
    sizes = StoreSizes(scales=tuple(int(s) for s in scales.split(",")), queries=queries)
    report = run_store(settings, sizes, out, log=lambda m: click.echo(m, err=True))
    click.echo(json.dumps(report, indent=None if as_json else 2))


@bench.command("capacity")
@click.option("--events-per-s", default=500.0, show_default=True, help="Product events.")
@click.option("--catalogue", default=1_000_000, show_default=True, help="Products indexed.")
@click.option("--queries-per-s", default=200.0, show_default=True, help="Image searches.")
@click.option("--utilisation", default=0.7, show_default=True, help="Of a replica's peak.")
@click.option("--results", type=click.Path(path_type=Path), default=Path("bench/results"))
@click.pass_obj
def bench_capacity(
    settings: Settings,
    events_per_s: float,
    catalogue: int,
    queries_per_s: float,
    utilisation: float,
    results: Path,
) -> None:
    """Partitions, workers, API replicas, Milvus nodes and memory for a load, from the
    throughputs `bench ingest`, `bench serve` and `bench search` measured (JSON)."""
    ensure_model(settings)
    measured = Measured.from_results(results, assembly.base_model(settings)[1])
    load = Load(events_per_s, catalogue, queries_per_s, utilisation)
    click.echo(json.dumps(plan(load, measured), indent=2))


@bench.command("heads")
@click.option("--small", is_flag=True, help="A quick run (300 products, 40 sessions).")
@click.option("--eval-queries", default=2000, show_default=True)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("bench/results/click-heads.json"),
    show_default=True,
)
@click.pass_obj
def bench_heads(settings: Settings, small: bool, eval_queries: int, out: Path) -> None:
    """Click-head training variants (triplet, InfoNCE, co-clicks; raw and calibrated scores) on
    the same SIMULATED clicks, the served ranking replayed in process; no services needed."""
    ensure_model(settings)
    sizes = LoopSizes.small() if small else LoopSizes()
    report = run_heads_bench(settings, sizes, eval_queries, lambda m: click.echo(m, err=True))
    write_report(report, out)
    click.echo(json.dumps(report, indent=2))


@bench.command("chaos")
@click.option("--long", "long_run", is_flag=True, help="50,000 events and 20 kills.")
@click.option("--events", default=None, type=int, help="Override the stream's length.")
@click.option("--kills", default=None, type=int, help="Override the worker kills.")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("bench/results/chaos.json"),
    show_default=True,
)
@click.pass_obj
def bench_chaos(
    settings: Settings, long_run: bool, events: int | None, kills: int | None, out: Path
) -> None:
    """Workers SIGKILLed, Kafka and Milvus restarted, during a stream of product events; then
    nothing lost, duplicated or diverged (JSON; exit 1 otherwise). Runs its own services."""
    ensure_model(settings)
    sizes = ChaosSizes.long() if long_run else ChaosSizes()
    sizes = replace(sizes, events=events or sizes.events, kills=kills or sizes.kills)
    report = run_chaos(settings, sizes).as_dict()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    click.echo(json.dumps(report, indent=2))
    if not report["ok"]:
        sys.exit(1)


@click.command()
@click.option("-n", "--products", default=2000, show_default=True)
@click.option("--queries", default=1000, show_default=True, help="Held-out queries (>= 500).")
@click.option("--timeout", default=480.0, show_default=True, help="Seconds to wait for indexing.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (progress: stderr).")
@click.option("--no-loop", is_flag=True, help="Skip the click loop (eval clicks --small).")
@click.pass_obj
def demo(
    settings: Settings, products: int, queries: int, timeout: float, as_json: bool, no_loop: bool
) -> None:
    """The main job: services up, catalogue produced, worker indexes it, held-out search;
    then the click loop: SIMULATED clicks, pairs, a trained head, a re-index under load."""
    report = run_demo(settings, products, queries, timeout, log=not as_json)
    if not no_loop:

        def say(message: str) -> None:
            click.echo(message, err=True)

        say("\nthe click loop (its own database and topics; SIMULATED shoppers):")
        loop = run_click_loop(settings, LoopSizes.small(), say)
        report["click_loop"] = loop
        summary = (
            f"  {loop['pairs_mined']} pairs mined from {loop['simulation']['clicks']} clicks; "
            f"head {loop['model']['model_version']}; re-index: "
            f"{loop['reindex']['failed_queries_during']} failed of "
            f"{loop['reindex']['searches_during']} searches, "
            f"{loop['reindex']['updates_in_new_collection']}/{loop['reindex']['updates_during']}"
            " updates kept\n"
            f"  held-out recall@10 / NDCG@10: base {loop['base']}, trained {loop['trained']}"
        )
        click.echo(summary, err=as_json)
    if as_json:
        click.echo(json.dumps(report))
    if report["indexed"] != report["produced"]:
        sys.exit(1)


@click.command()
@click.option("--api", "api_url", default=None, help="Default: http://API_HOST:API_PORT.")
@click.option("--sessions", default=50, show_default=True)
@click.option("--queries-per-session", default=10, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--concurrency", default=2, show_default=True)
@click.pass_obj
def simulate(
    settings: Settings,
    api_url: str | None,
    sessions: int,
    queries_per_session: int,
    seed: int,
    concurrency: int,
) -> None:
    """SIMULATED shoppers search a running API and click through it (demo and eval data)."""
    url = api_url or f"http://{settings.api_host}:{settings.api_port}"
    with httpx.Client(base_url=url, timeout=60) as http:
        logs = run_simulation(
            http, query_pool("train"), sessions, queries_per_session, seed, concurrency=concurrency
        )
    click.echo(
        json.dumps(
            {
                "simulated_sessions": len(logs),
                "searches": sum(len(log.searches) for log in logs),
                "clicks": sum(len(log.clicks) for log in logs),
                "failed_queries": sum(log.failed_queries for log in logs),
            }
        )
    )
