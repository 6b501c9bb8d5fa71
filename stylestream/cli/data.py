"""``stylestream produce``, ``catalog``, ``export`` and ``schemas``: data in and out."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from bench.catalog import fashion_mnist_catalogue, outfit_catalogue, write_jsonl
from config.kafka import KafkaConfig
from config.settings import Settings
from schemas.dead_letter import DeadLetter
from schemas.events import dumps_schema, product_event_json_schema
from schemas.interactions import TrainingPair, interaction_event_json_schema
from schemas.outfits import outfit_event_json_schema
from stores.pair_files import write_pairs
from stores.pairs import PairRepository
from stores.postgres import make_engine
from streams.producer import OutfitProducer, ProductProducer, produce_file


def parse_since(value: str | None) -> datetime:
    """An ISO 8601 option value (naive = UTC); None = the beginning of time."""
    if value is None:
        return datetime(2000, 1, 1, tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"not an ISO 8601 time: {value!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@click.group()
def produce() -> None:
    """Send events to Kafka (validated before sending)."""


@produce.command("products")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--no-progress", is_flag=True)
@click.pass_obj
def produce_products(settings: Settings, file: Path, no_progress: bool) -> None:
    """Send each line of FILE (JSONL product events); invalid lines are listed, not sent."""
    with ProductProducer(KafkaConfig.of(settings), settings.products_topic) as producer:
        report = produce_file(producer, file, progress=not no_progress)
    for number, reason in report.invalid:
        click.echo(f"line {number}: {reason}", err=True)
    click.echo(f"sent {report.sent}, invalid {len(report.invalid)}")
    if report.invalid:
        sys.exit(2)


@produce.command("outfits")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--no-progress", is_flag=True)
@click.pass_obj
def produce_outfits(settings: Settings, file: Path, no_progress: bool) -> None:
    """Send each line of FILE (JSONL outfit events) to outfits.v1; invalid lines are listed,
    not sent."""
    with OutfitProducer(KafkaConfig.of(settings), settings.outfits_topic) as producer:
        report = produce_file(producer, file, progress=not no_progress)
    for number, reason in report.invalid:
        click.echo(f"line {number}: {reason}", err=True)
    click.echo(f"sent {report.sent}, invalid {len(report.invalid)}")
    if report.invalid:
        sys.exit(2)


@click.group()
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
    out = out or settings.data_dir / "catalog"
    cat = fashion_mnist_catalogue(out, count, version=version, seed=seed)
    path = out / "products.jsonl"
    write_jsonl(cat.events, path)
    click.echo(f"{len(cat.events)} products -> {path}")


@catalog.command("outfits")
@click.option("--garments", default=700, show_default=True, help="SYNTHETIC garments drawn.")
@click.option("--photos", default=300, show_default=True, help="Fashion-MNIST photos beside.")
@click.option("--outfits", default=500, show_default=True, help="SIMULATED outfits over them.")
@click.option("--out", type=click.Path(path_type=Path), default=None)
@click.option("--seed", default=0, show_default=True)
@click.pass_obj
def catalog_outfits(
    settings: Settings, garments: int, photos: int, outfits: int, out: Path | None, seed: int
) -> None:
    """The SIMULATED stylist's catalogue: products.jsonl (SYNTHETIC garments of every kind,
    shoes and bags included, beside Fashion-MNIST photos) and outfits.jsonl (SIMULATED
    outfits, labelled by hidden visual rules with label noise). Send the products first."""
    out = out or settings.data_dir / "outfit-catalog"
    cat = outfit_catalogue(out, garments, photos, outfits, seed)
    write_jsonl(cat.products, out / "products.jsonl")
    write_jsonl(cat.outfits, out / "outfits.jsonl")
    click.echo(f"{len(cat.products)} products -> {out / 'products.jsonl'}")
    click.echo(f"{len(cat.outfits)} outfits -> {out / 'outfits.jsonl'}")


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
    engine = make_engine(settings.pg_dsn)
    try:
        n = write_pairs(PairRepository(engine).since(parse_since(since)), out, fmt)
    finally:
        engine.dispose()
    click.echo(f"{n} pairs -> {out}", err=True)


@click.group()
def schemas() -> None:
    """Contracts."""


@schemas.command("export")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
def schemas_export(out: Path) -> None:
    """Write the JSON Schemas of the events and the dead-letter envelope into OUT."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "products.v1.schema.json").write_text(dumps_schema(product_event_json_schema()))
    interactions = dumps_schema(interaction_event_json_schema())
    (out / "interactions.v1.schema.json").write_text(interactions)  # both interaction topics
    pairs = dumps_schema(TrainingPair.model_json_schema())
    (out / "training-pairs.v1.schema.json").write_text(pairs)
    (out / "dead-letter.v1.schema.json").write_text(dumps_schema(DeadLetter.model_json_schema()))
    (out / "outfits.v1.schema.json").write_text(dumps_schema(outfit_event_json_schema()))
    click.echo(f"schemas written to {out}")
