"""``stylestream``: the one CLI, a module per command group. Settings are built here, once,
and passed down; nothing imports this package."""

from __future__ import annotations

import click

from config.settings import Settings
from stylestream.cli.bench import bench, demo, simulate
from stylestream.cli.data import catalog, export, produce, schemas
from stylestream.cli.dev import dev, migrate, topics
from stylestream.cli.evaluate import evaluate
from stylestream.cli.index import index, reindex
from stylestream.cli.run import api, mine, search, worker
from stylestream.cli.train import model, train


@click.group()
@click.pass_context
def main(ctx: click.Context) -> None:
    """StyleStream: streaming fashion visual search (settings: STYLESTREAM_* env vars)."""
    ctx.obj = Settings()


for command in (
    dev,
    migrate,
    topics,
    model,
    train,
    evaluate,
    worker,
    mine,
    api,
    search,
    produce,
    catalog,
    export,
    schemas,
    reindex,
    index,
    demo,
    simulate,
    bench,
):
    main.add_command(command)
