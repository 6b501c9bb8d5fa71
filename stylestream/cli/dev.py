"""``stylestream dev``, ``migrate`` and ``topics``: local services and the stores' set-up."""

from __future__ import annotations

import sys

import click

from config.settings import Settings
from deploy.local import services
from stores.migrate import upgrade
from streams.topics import ensure_topics


@click.group()
def dev() -> None:
    """Local Kafka, Postgres and Milvus Lite on 127.0.0.1 (data under STYLESTREAM_DATA_DIR)."""


@dev.command("up")
@click.pass_obj
def dev_up(settings: Settings) -> None:
    """Start every local service (idempotent) and wait until each is healthy."""
    services.up(settings)
    _print_status(settings)


@dev.command("down")
@click.pass_obj
def dev_down(settings: Settings) -> None:
    """Stop the local services this project started."""
    stopped = services.down(settings)
    click.echo(f"stopped: {', '.join(stopped) or 'nothing was running'}")


@dev.command("status")
@click.pass_obj
def dev_status(settings: Settings) -> None:
    """Show each local service; exits 1 if any is unhealthy."""
    if not _print_status(settings):
        sys.exit(1)


def _print_status(settings: Settings) -> bool:
    all_ok = True
    for st in services.status(settings):
        all_ok &= st.healthy
        click.echo(f"{st.name:9} {'healthy' if st.healthy else 'DOWN':8} {st.detail}")
    return all_ok


@click.command()
@click.pass_obj
def migrate(settings: Settings) -> None:
    """Apply the Alembic migrations to the configured Postgres."""
    upgrade(settings.pg_dsn)
    click.echo("migrations applied (head)")


@click.group()
def topics() -> None:
    """Kafka topics."""


@topics.command("create")
@click.pass_obj
def topics_create(settings: Settings) -> None:
    """Create the project's topics with their partition counts (idempotent)."""
    for name, parts in ensure_topics(settings).items():
        click.echo(f"{name}: {parts} partitions")
