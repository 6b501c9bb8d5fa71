"""``stylestream``: the one CLI, a module per command group. Settings are built here, once,
and passed down; nothing imports this package. A command's module is imported only when that
command runs, so a worker or an API process loads what it serves and nothing more."""

from __future__ import annotations

import importlib

import click

from config.settings import Settings

# command name -> (module under stylestream.cli, the command's attribute there, its summary)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "dev": ("dev", "dev", "Local Kafka, Postgres and Milvus Lite on 127.0.0.1."),
    "migrate": ("dev", "migrate", "Apply the Alembic migrations to the configured Postgres."),
    "topics": ("dev", "topics", "Kafka topics."),
    "model": ("train", "model", "Models."),
    "train": ("train", "train", "Train models (needs the [train] extra: torch)."),
    "eval": ("evaluate", "evaluate", "Evaluate the served models on held-out data (JSON out)."),
    "worker": ("run", "worker", "Run a Faust worker: product events -> Milvus and Postgres."),
    "mine": ("run", "mine", "Run the click miner: impressions + clicks -> training pairs."),
    "api": ("run", "api", "Serve the search API and the web page (uvicorn)."),
    "search": ("run", "search", "Visually similar products for an image or a product."),
    "produce": ("data", "produce", "Send events to Kafka (validated before sending)."),
    "catalog": ("data", "catalog", "Build product catalogues."),
    "export": ("data", "export", "Export data for ML teams."),
    "schemas": ("data", "schemas", "Contracts."),
    "dlq": ("dlq", "dlq", "The dead-letter topic: list, show, replay."),
    "reindex": ("index", "reindex", "Build a collection for a model, then switch searches."),
    "index": ("index", "index", "Milvus collections: which serves, which are kept."),
    "reconcile": ("index", "reconcile", "Repair drift between Milvus and the Postgres ledger."),
    "demo": ("bench", "demo", "The main job end to end, then the click loop."),
    "simulate": ("bench", "simulate", "SIMULATED shoppers search a running API and click."),
    "bench": ("bench", "bench", "Benchmarks (JSON out; baselines in the same run)."),
}


class LazyGroup(click.Group):
    """Click's documented pattern for lazily loaded subcommands."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, attribute, _ = COMMANDS[cmd_name]
        command: click.Command = getattr(
            importlib.import_module(f"stylestream.cli.{module}"), attribute
        )
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The summaries without importing every command's module."""
        with formatter.section("Commands"):
            formatter.write_dl([(name, COMMANDS[name][2]) for name in sorted(COMMANDS)])


@click.group(cls=LazyGroup)
@click.pass_context
def main(ctx: click.Context) -> None:
    """StyleStream: streaming fashion visual search (settings: STYLESTREAM_* env vars)."""
    ctx.obj = Settings()
