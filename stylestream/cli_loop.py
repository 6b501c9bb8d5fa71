"""The click loop's commands: export pairs, train a head, re-index, manage collections,
simulate shoppers and evaluate the whole loop."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import click

from stylestream.cli_models import evaluate, train
from stylestream.settings import Settings


def _registry(settings: Settings):  # type: ignore[no-untyped-def]
    from stores.postgres import make_engine
    from stores.registry import ServingRegistry

    return ServingRegistry(make_engine(settings.pg_dsn))


def _since(value: str | None) -> datetime:
    if value is None:
        return datetime(2000, 1, 1, tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"not an ISO 8601 time: {value!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@click.group("export")
def export() -> None:
    """Export data for ML teams."""


@export.command("pairs")
@click.option("--since", default=None, help="ISO 8601 time: pairs mined after it (default: all).")
@click.option("--format", "fmt", type=click.Choice(["parquet", "jsonl"]), default="jsonl")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.pass_obj
def export_pairs(settings: Settings, since: str | None, fmt: str, out: Path) -> None:
    """Click-mined training pairs from Postgres, one record per pair (docs: README)."""
    from stores.pairs import PairRepository
    from stores.postgres import make_engine
    from stylestream.export import write_pairs

    engine = make_engine(settings.pg_dsn)
    try:
        n = write_pairs(PairRepository(engine).since(_since(since)), out, fmt)
    finally:
        engine.dispose()
    click.echo(f"{n} pairs -> {out}", err=True)


@train.command("embedding")
@click.option("--since", default=None, help="Only pairs mined after this ISO 8601 time.")
@click.option("--held-out-percent", default=20, show_default=True)
@click.option("--dim", default=128, show_default=True, help="Output dimension of the head.")
@click.option("--max-epochs", default=15, show_default=True)
@click.option(
    "--loss",
    type=click.Choice(["infonce", "triplet"]),
    default="infonce",
    show_default=True,
    help="infonce: each query against the whole catalogue, plus co-clicks; triplet: each "
    "pair's own negatives.",
)
@click.pass_obj
def train_embedding_cmd(
    settings: Settings,
    since: str | None,
    held_out_percent: int,
    dim: int,
    max_epochs: int,
    loss: Literal["infonce", "triplet"],
) -> None:
    """A head over the base embedding, trained on mined pairs (contrastive or triplet loss),
    judged on held-out sessions, its scores calibrated to the base model's scale, and
    registered in Postgres with its lineage."""
    from stores.pairs import PairRepository
    from training.click_head import train_embedding
    from training.embedding_head import HeadConfig

    registry = _registry(settings)
    model = train_embedding(
        registry,
        PairRepository(registry.engine).since(_since(since)),
        settings.models_path,
        HeadConfig(
            dim=dim,
            max_epochs=max_epochs,
            loss=loss,
            calibration_top=settings.rerank_candidates,
        ),
        held_out_percent,
    )
    summary = {k: v for k, v in model.__dict__.items() if k not in ("artifact", "created_at")}
    summary["metrics"] = {k: v for k, v in model.metrics.items() if k != "history"}
    click.echo(json.dumps(summary, indent=2, default=str))


@click.command()
@click.option("--model", "model_version", required=True, help="A registered model version.")
@click.option("--no-progress", is_flag=True)
@click.pass_obj
def reindex(settings: Settings, model_version: str, no_progress: bool) -> None:
    """Build a new collection for MODEL from Postgres, then switch searches to it."""
    from tqdm import tqdm

    from stores.postgres import PostgresRepository
    from stylestream.reindex import Reindexer

    repo = PostgresRepository.from_dsn(settings.pg_dsn)
    bar = tqdm(unit="product", disable=no_progress, file=sys.stderr)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    try:
        report = Reindexer(settings, _registry(settings), repo, progress).run(model_version)
    except (LookupError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        bar.close()
        repo.close()
    click.echo(json.dumps(report.as_dict(), indent=2))


@click.group("index")
def index() -> None:
    """Milvus collections: which serves, which are kept."""


@index.command("list")
@click.pass_obj
def index_list(settings: Settings) -> None:
    for row in _registry(settings).collections():
        click.echo(f"{row.state:9} {row.collection}  model={row.model_version} rows={row.rows}")


@index.command("drop")
@click.argument("collection")
@click.pass_obj
def index_drop(settings: Settings, collection: str) -> None:
    """Drop a retired collection (never the serving one)."""
    from stores.milvus import connect

    try:
        _registry(settings).forget(collection)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    client = connect(settings.milvus_uri, settings.milvus_token)
    if client.has_collection(collection):
        client.drop_collection(collection)
    click.echo(f"dropped {collection}")


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
    import httpx

    from stylestream.click_loop import query_pool
    from stylestream.click_simulator import simulate as run

    url = api_url or f"http://{settings.api_host}:{settings.api_port}"
    with httpx.Client(base_url=url, timeout=60) as http:
        logs = run(
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


@evaluate.command("clicks")
@click.option("--small", is_flag=True, help="A quick run (300 products, 40 sessions).")
@click.option("--json", "as_json", is_flag=True)
@click.option("--out", type=click.Path(path_type=Path), default=Path("bench/results/clicks.json"))
@click.pass_obj
def eval_clicks(settings: Settings, small: bool, as_json: bool, out: Path) -> None:
    """The loop end to end in its own database and topics: base vs trained on held-out
    SIMULATED sessions, pairs mined, failed queries during a re-index under load."""
    from stylestream.click_eval import run_click_loop
    from stylestream.click_loop import LoopSizes

    sizes = LoopSizes.small() if small else LoopSizes()
    report = run_click_loop(settings, sizes, lambda m: click.echo(m, err=True))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str))
    click.echo(json.dumps(report, indent=None if as_json else 2, default=str))


@click.command("heads")
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
    from bench.click_heads import run_heads_bench, write_report
    from stylestream.click_loop import LoopSizes
    from stylestream.demo import ensure_model

    ensure_model(settings)
    sizes = LoopSizes.small() if small else LoopSizes()
    report = run_heads_bench(settings, sizes, eval_queries, lambda m: click.echo(m, err=True))
    write_report(report, out)
    click.echo(json.dumps(report, indent=2))
