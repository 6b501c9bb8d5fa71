"""``stylestream``: the one CLI. Settings are built here, once, and passed down."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from stylestream.cli_loop import bench_heads, export, index, reindex, simulate
from stylestream.cli_models import evaluate, train
from stylestream.settings import Settings


@click.group()
@click.pass_context
def main(ctx: click.Context) -> None:
    """StyleStream: streaming fashion visual search (settings: STYLESTREAM_* env vars)."""
    ctx.obj = Settings()


@main.group()
def dev() -> None:
    """Local Kafka, Postgres and Milvus Lite on 127.0.0.1 (data under STYLESTREAM_DATA_DIR)."""


@dev.command("up")
@click.pass_obj
def dev_up(settings: Settings) -> None:
    """Start every local service (idempotent) and wait until each is healthy."""
    from stylestream.dev import services

    services.up(settings)
    _print_status(settings)


@dev.command("down")
@click.pass_obj
def dev_down(settings: Settings) -> None:
    """Stop the local services this project started."""
    from stylestream.dev import services

    stopped = services.down(settings)
    click.echo(f"stopped: {', '.join(stopped) or 'nothing was running'}")


@dev.command("status")
@click.pass_obj
def dev_status(settings: Settings) -> None:
    """Show each local service; exits 1 if any is unhealthy."""
    if not _print_status(settings):
        sys.exit(1)


def _print_status(settings: Settings) -> bool:
    from stylestream.dev import services

    all_ok = True
    for st in services.status(settings):
        all_ok &= st.healthy
        click.echo(f"{st.name:9} {'healthy' if st.healthy else 'DOWN':8} {st.detail}")
    return all_ok


@main.command()
@click.pass_obj
def migrate(settings: Settings) -> None:
    """Apply the Alembic migrations to the configured Postgres."""
    from stores.migrate import upgrade

    upgrade(settings.pg_dsn)
    click.echo("migrations applied (head)")


@main.group()
def topics() -> None:
    """Kafka topics."""


@topics.command("create")
@click.pass_obj
def topics_create(settings: Settings) -> None:
    """Create the project's topics with their partition counts (idempotent)."""
    from streams.topics import ensure_topics

    for name, parts in ensure_topics(settings).items():
        click.echo(f"{name}: {parts} partitions")


@main.group()
def model() -> None:
    """Models."""


@model.command("export")
@click.option("--force", is_flag=True, help="Re-export even if the file exists.")
@click.pass_obj
def model_export(settings: Settings, force: bool) -> None:
    """Export EfficientNet-Lite0 (ImageNet) to ONNX at the configured image size (needs torch)."""
    from training.export import export_base_model

    path = export_base_model(settings.models_path, settings.image_size, force=force)
    click.echo(str(path))


@main.command()
@click.option("--loglevel", default="info", show_default=True)
@click.pass_obj
def worker(settings: Settings, loglevel: str) -> None:
    """Run a Faust worker: product events -> embeddings + colours -> Milvus and Postgres."""
    from stylestream.worker import run_worker

    run_worker(settings, loglevel)


@main.command()
@click.option("--loglevel", default="info", show_default=True)
@click.pass_obj
def mine(settings: Settings, loglevel: str) -> None:
    """Run the click miner: impressions + clicks -> training pairs (Kafka and Postgres)."""
    from stylestream.miner import run_miner

    run_miner(settings, loglevel)


@main.group()
def produce() -> None:
    """Send events to Kafka (validated before sending)."""


@produce.command("products")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--no-progress", is_flag=True)
@click.pass_obj
def produce_products(settings: Settings, file: Path, no_progress: bool) -> None:
    """Send each line of FILE (JSONL product events); invalid lines are listed, not sent."""
    from stylestream.producer import ProductProducer, produce_file

    with ProductProducer(settings.kafka_bootstrap, settings.products_topic) as producer:
        report = produce_file(producer, file, progress=not no_progress)
    for number, reason in report.invalid:
        click.echo(f"line {number}: {reason}", err=True)
    click.echo(f"sent {report.sent}, invalid {len(report.invalid)}")
    if report.invalid:
        sys.exit(2)


@main.group()
def catalog() -> None:
    """Build product catalogues."""


@catalog.command("fashion-mnist")
@click.option("-n", "--count", default=2000, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=None)
@click.option("--version", "version", default=1, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.pass_obj
def catalog_fashion_mnist(
    settings: Settings, count: int, out: Path | None, version: int, seed: int
) -> None:
    """Fashion-MNIST train photos as product events (JSONL); invented fields marked synthetic."""
    from stylestream.catalog import fashion_mnist_catalogue, write_jsonl

    out = out or settings.data_dir / "catalog"
    cat = fashion_mnist_catalogue(out, count, version=version, seed=seed)
    path = out / "products.jsonl"
    write_jsonl(cat.events, path)
    click.echo(f"{len(cat.events)} products -> {path}")


@main.command()
@click.option("--image", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--product-id")
@click.option("-k", default=10, show_default=True)
@click.option("--category")
@click.option("--colour")
@click.option(
    "--attribute",
    "attributes",
    multiple=True,
    help="Taxonomy key, repeatable: any of them within a group, every group (colour.red).",
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def search(
    settings: Settings,
    image: Path | None,
    product_id: str | None,
    k: int,
    category: str | None,
    colour: str | None,
    attributes: tuple[str, ...],
    as_json: bool,
) -> None:
    """Visually similar products for an image file or an indexed product."""
    from processors.errors import ProcessingError
    from processors.images import decode_image
    from schemas.attributes import BY_KEY
    from stylestream import components
    from stylestream.search import Filters, UnknownProduct

    if (image is None) == (product_id is None):
        raise click.UsageError("give exactly one of --image or --product-id")
    unknown = [a for a in attributes if a not in BY_KEY]
    if unknown:
        raise click.UsageError(f"unknown attribute keys {unknown} (see GET /v1/attributes)")
    service = components.open_search(settings)
    filters = Filters(category=category, colour=colour, attributes=attributes)
    try:
        if image is not None:
            rgb = decode_image(image.read_bytes(), components.image_limits(settings))
            hits = service.by_images([rgb], k, filters)[0]
        else:
            assert product_id is not None
            hits = service.by_product(product_id, k, filters)
    except (ProcessingError, UnknownProduct) as exc:
        raise click.ClickException(str(exc)) from exc
    rows = [
        {
            "product_id": h.product_id,
            "category": h.fields.get("category"),
            "colour": h.fields.get("primary_colour"),
            "score": round(h.score, 4),
            "visual": round(h.visual, 4),
            "attribute_overlap": round(h.attributes, 4),
            "predicted_category": h.fields.get("predicted_category"),
            "attributes": h.fields.get("attributes", []),
        }
        for h in hits
    ]
    if as_json:
        click.echo(json.dumps(rows))
        return
    for rank, r in enumerate(rows, 1):
        click.echo(
            f"{rank:2}. {r['product_id']:24} {r['category']!s:14} {r['colour']!s:8} "
            f"{r['score']:.4f}  {' '.join(r['attributes'])}"
        )


@main.command()
@click.option("-n", "--products", default=2000, show_default=True)
@click.option("--queries", default=1000, show_default=True, help="Held-out queries (>= 500).")
@click.option("--timeout", default=480.0, show_default=True, help="Seconds to wait for indexing.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--no-loop", is_flag=True, help="Skip the click loop (eval clicks --small).")
@click.pass_obj
def demo(
    settings: Settings, products: int, queries: int, timeout: float, as_json: bool, no_loop: bool
) -> None:
    """The main job: services up, catalogue produced, worker indexes it, held-out search;
    then the click loop: SIMULATED clicks, pairs, a trained head, a re-index under load."""
    from stylestream.demo import run_demo

    report = run_demo(settings, products, queries, timeout, log=not as_json)
    if not no_loop:
        from stylestream.click_eval import run_click_loop
        from stylestream.click_loop import LoopSizes

        def say(message: str) -> None:
            if not as_json:
                click.echo(message)

        say("\nthe click loop (its own database and topics; SIMULATED shoppers):")
        loop = run_click_loop(settings, LoopSizes.small(), say)
        report["click_loop"] = loop
        say(
            f"  {loop['pairs_mined']} pairs mined from {loop['simulation']['clicks']} clicks; "
            f"head {loop['model']['model_version']}; re-index: "
            f"{loop['reindex']['failed_queries_during']} failed of "
            f"{loop['reindex']['searches_during']} searches, "
            f"{loop['reindex']['updates_in_new_collection']}/{loop['reindex']['updates_during']}"
            " updates kept"
        )
        say(f"  held-out recall@10 / NDCG@10: base {loop['base']}, trained {loop['trained']}")
    if as_json:
        click.echo(json.dumps(report))
    if report["indexed"] != report["produced"]:
        sys.exit(1)


@main.command()
@click.option("--host", default=None, help="Default: STYLESTREAM_API_HOST (127.0.0.1).")
@click.option("--port", default=None, type=int, help="Default: STYLESTREAM_API_PORT (8000).")
@click.pass_obj
def api(settings: Settings, host: str | None, port: int | None) -> None:
    """Serve the search API and the web page (uvicorn)."""
    import uvicorn

    from api.app import create_app

    uvicorn.run(
        create_app(settings),
        host=host or settings.api_host,
        port=port or settings.api_port,
        log_level="info",
        access_log=False,
    )


@main.group()
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
    from bench.search import run_search_bench

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


@main.group()
def schemas() -> None:
    """Contracts."""


@schemas.command("export")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
def schemas_export(out: Path) -> None:
    """Write the JSON Schemas of the events and the dead-letter envelope into OUT."""
    from schemas.dead_letter import DeadLetter
    from schemas.events import dumps_schema, product_event_json_schema
    from schemas.interactions import TrainingPair, interaction_event_json_schema

    out.mkdir(parents=True, exist_ok=True)
    (out / "products.v1.schema.json").write_text(dumps_schema(product_event_json_schema()))
    interactions = dumps_schema(interaction_event_json_schema())
    (out / "interactions.v1.schema.json").write_text(interactions)  # both interaction topics
    pairs = dumps_schema(TrainingPair.model_json_schema())
    (out / "training-pairs.v1.schema.json").write_text(pairs)
    (out / "dead-letter.v1.schema.json").write_text(dumps_schema(DeadLetter.model_json_schema()))
    click.echo(f"schemas written to {out}")


main.add_command(train)
main.add_command(evaluate)
bench.add_command(bench_heads)
for command in (export, reindex, index, simulate):
    main.add_command(command)

if __name__ == "__main__":
    main()
