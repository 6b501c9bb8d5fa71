"""``stylestream dlq``: the dead-letter topic listed, inspected and replayed."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from config.settings import Settings
from schemas.dead_letter import ErrorKind
from stores.dead_letters import PostgresOriginals
from stores.postgres import make_engine
from streams.dead_letters import Selection, kinds_count, original_of, read_letters, replay
from stylestream.cli.data import parse_since


def _selection(
    kinds: tuple[str, ...],
    product_ids: tuple[str, ...],
    since: str | None,
    until: str | None,
    positions: tuple[str, ...] = (),
) -> Selection:
    return Selection(
        frozenset(ErrorKind(k) for k in kinds),
        frozenset(product_ids),
        parse_since(since) if since else None,
        parse_since(until) if until else None,
        frozenset(positions),
    )


F = TypeVar("F", bound=Callable[..., Any])


def _filters(command: F) -> F:
    options = [
        click.option(
            "--kind", "kinds", multiple=True, type=click.Choice([k.value for k in ErrorKind])
        ),
        click.option("--product-id", "product_ids", multiple=True),
        click.option("--since", default=None, help="ISO 8601: letters dead-lettered from then."),
        click.option("--until", default=None, help="ISO 8601: letters dead-lettered before then."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@click.group()
def dlq() -> None:
    """The dead-letter topic: list, show, replay."""


@dlq.command("list")
@_filters
@click.option("--json", "as_json", is_flag=True, help="One JSON object per letter.")
@click.pass_obj
def list_letters(
    settings: Settings,
    kinds: tuple[str, ...],
    product_ids: tuple[str, ...],
    since: str | None,
    until: str | None,
    as_json: bool,
) -> None:
    """Dead letters, oldest first, with a count by kind (stderr)."""
    scan = read_letters(settings, _selection(kinds, product_ids, since, until))
    for found in scan.letters:
        letter = found.letter
        if as_json:
            summary = letter.model_dump(mode="json", exclude={"original_base64"})
            click.echo(json.dumps({"position": found.position, **summary}))
        else:
            click.echo(
                f"{found.position:>10}  {letter.failed_at:%Y-%m-%d %H:%M:%S}  "
                f"{letter.error_kind.value:<24} {letter.product_id or '-':<24} "
                f"{letter.error_message[:80]}"
            )
    counts = ", ".join(f"{k} {n}" for k, n in kinds_count(scan.letters).items()) or "none"
    click.echo(f"{len(scan.letters)} dead letters ({counts})", err=True)
    if scan.unreadable:
        click.echo(f"{scan.unreadable} records on the topic are not dead letters", err=True)


@dlq.command("show")
@click.argument("position")
@click.option("--original", is_flag=True, help="Print the original event's bytes as text.")
@click.pass_obj
def show(settings: Settings, position: str, original: bool) -> None:
    """One letter by its PARTITION:OFFSET in the dead-letter topic."""
    found = read_letters(settings, Selection(positions=frozenset([position]))).letters
    if not found:
        raise click.ClickException(f"no dead letter at {position}")
    letter = found[0].letter
    click.echo(json.dumps(letter.model_dump(mode="json", exclude={"original_base64"}), indent=2))
    if original:
        engine = make_engine(settings.pg_dsn)
        try:
            data = original_of(letter, PostgresOriginals(engine))
        finally:
            engine.dispose()
        if data is None:
            raise click.ClickException("the original is lost or does not match its hash")
        sys.stdout.write(data.decode("utf-8", "replace") + "\n")


@dlq.command("replay")
@_filters
@click.option("--at", "positions", multiple=True, help="PARTITION:OFFSET (repeatable).")
@click.option("--all", "everything", is_flag=True, help="Replay every letter (no filter).")
@click.option("--dry-run", is_flag=True, help="Say what would be sent; send nothing.")
@click.pass_obj
def replay_letters(
    settings: Settings,
    kinds: tuple[str, ...],
    product_ids: tuple[str, ...],
    since: str | None,
    until: str | None,
    positions: tuple[str, ...],
    everything: bool,
    dry_run: bool,
) -> None:
    """Send the selected letters' originals back to their topics, oldest first. Safe to
    repeat: a replayed product event is stale once applied, a replayed click pairs once."""
    selection = _selection(kinds, product_ids, since, until, positions)
    if selection.everything and not everything:
        raise click.UsageError(
            "select letters (--kind, --product-id, --since, --until, --at) or say --all"
        )
    scan = read_letters(settings, selection)
    engine = make_engine(settings.pg_dsn)
    try:
        report = replay(settings, scan.letters, PostgresOriginals(engine), dry_run)
    finally:
        engine.dispose()
    for position, why in report.skipped.items():
        click.echo(f"skipped {position}: {why}", err=True)
    verb = "would replay" if dry_run else "replayed"
    click.echo(f"{verb} {len(report.sent)} of {len(scan.letters)} selected dead letters")
    if report.skipped:
        sys.exit(2)
