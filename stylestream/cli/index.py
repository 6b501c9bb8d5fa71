"""``stylestream reindex`` and ``stylestream index``: Milvus collections and the serving
pointer."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import partial
from typing import Any

import click
import numpy as np
from sqlalchemy import Engine
from tqdm import tqdm

from config import assembly
from config.settings import Settings
from processors.binary_codes import BinaryCoder
from schemas.tables import text_collections
from stores.milvus import connect, drop_prefixed
from stores.postgres import PostgresRepository, make_engine
from stores.reconcile import Reconciler
from stores.registry import ServingRegistry
from stores.side_models import CompatModels, ModifyModels, SideModels
from training.binary_codes import fit_itq, fit_sign


def _registry(settings: Settings, text_pointer: bool = False) -> ServingRegistry:
    engine = make_engine(settings.pg_dsn)
    return ServingRegistry(engine, text_collections) if text_pointer else ServingRegistry(engine)


TEXT = click.option("--text", "text_pointer", is_flag=True, help="Product text collections.")


@click.command()
@click.option("--model", "model_version", required=True, help="A registered model version.")
@click.option(
    "--codes",
    type=click.Choice(["none", "sign", "pca-itq"]),
    default="none",
    show_default=True,
    help="Also build a binary (Hamming) index with codes of this kind (a Milvus server).",
)
@click.option("--bits", default=512, show_default=True, help="pca-itq code length (bits).")
@click.option(
    "--text",
    "text_model",
    is_flag=True,
    help="MODEL is a text model: build its product text vectors, then switch text queries.",
)
@click.option("--no-progress", is_flag=True)
@click.pass_obj
def reindex(
    settings: Settings,
    model_version: str,
    codes: str,
    bits: int,
    text_model: bool,
    no_progress: bool,
) -> None:
    """Build a new collection for MODEL from Postgres, then switch searches to it."""
    if text_model and codes != "none":
        raise click.UsageError("text collections are float only: --codes needs an image model")
    fit: Callable[[np.ndarray], BinaryCoder] | None = None
    if codes == "sign":
        fit = fit_sign
    elif codes == "pca-itq":
        fit = partial(fit_itq, bits=bits)
    repo = PostgresRepository.from_dsn(settings.pg_dsn)
    bar = tqdm(unit="product", disable=no_progress, file=sys.stderr)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    try:
        opener = assembly.open_text_reindexer if text_model else assembly.open_reindexer
        report = opener(settings, repo, progress).run(model_version, fit)
    except (LookupError, RuntimeError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        bar.close()
        repo.close()
    click.echo(json.dumps(report.as_dict(), indent=2))


@click.group("index")
def index() -> None:
    """Milvus collections: which serves, which are kept."""


@index.command("list")
@TEXT
@click.pass_obj
def index_list(settings: Settings, text_pointer: bool) -> None:
    for row in _registry(settings, text_pointer).collections():
        codes = f" codes={row.coder_version}" if row.coder_version else ""
        click.echo(
            f"{row.state:9} {row.collection}  model={row.model_version} rows={row.rows}{codes}"
        )


@index.command("drop")
@click.argument("collection")
@TEXT
@click.pass_obj
def index_drop(settings: Settings, collection: str, text_pointer: bool) -> None:
    """Drop a retired collection (never the serving one)."""
    try:
        _registry(settings, text_pointer).forget(collection)
    except (LookupError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    client = connect(settings.milvus_uri, settings.milvus_token.get_secret_value())
    if client.has_collection(collection):
        client.drop_collection(collection)
    drop_prefixed(client, f"{collection}__codes_")  # its binary indexes
    client.close()
    click.echo(f"dropped {collection}")


@index.command("words-alone")
@click.pass_obj
def index_words_alone(settings: Settings) -> None:
    """Text queries back to words alone: the serving text collection is retired (kept, so
    `reindex --text` or `index drop --text` can follow)."""
    retired = _registry(settings, text_pointer=True).stop_serving()
    click.echo(f"retired {retired}: text queries by words alone" if retired else "none served")


@index.command("modifiers")
@click.option("--serve", "version", default=None, help="Make this registered model serve.")
@click.pass_obj
def index_modifiers(settings: Settings, version: str | None) -> None:
    """The joint modifier models (POST /v1/search/modify): which serves; --serve switches
    (a rollback: API replicas follow within STYLESTREAM_SERVING_REFRESH_S)."""

    def describe(m: dict[str, Any]) -> str:
        ratio = m["metrics"].get("joint_over_best_baseline_recall", {}).get("overall")
        return f"joint/best R@10={ratio}"

    _side_models(settings, ModifyModels, version, describe)


def _side_models(
    settings: Settings,
    registry: Callable[[Engine], SideModels],
    version: str | None,
    describe: Callable[[dict[str, Any]], str],
) -> None:
    """A side-model registry's listing (``describe``: a model's figures), after switching to
    ``version`` when given."""
    engine = make_engine(settings.pg_dsn)
    try:
        models = registry(engine)
        if version is not None:
            try:
                models.serve(version)
            except LookupError as exc:
                raise click.ClickException(str(exc)) from exc
        for m in models.list():
            click.echo(
                f"{m['state']:9} {m['model_version']}  base={m['base_model_version']} "
                f"{describe(m)} created={m['created_at']:%Y-%m-%d %H:%M}"
            )
    finally:
        engine.dispose()


@click.command()
@click.option("--dry-run", is_flag=True, help="Report drift; repair nothing.")
@click.pass_obj
def reconcile(settings: Settings, dry_run: bool) -> None:
    """Compare every written Milvus collection with the Postgres ledger and repair drift
    (JSON report; exit 1 when drift was found on a dry run)."""
    repo = PostgresRepository.from_dsn(settings.pg_dsn)
    base = assembly.base_model(settings)
    targets = assembly.open_serving(settings, repo.engine, base)
    texts = assembly.open_text_serving(settings, repo.engine, base[0])
    try:
        reconciler = Reconciler(repo, targets, base_model_version=base[0], text_targets=texts)
        drifts = reconciler.run(repair=not dry_run)
    finally:
        targets.close()
        texts.close()
        repo.close()
    click.echo(json.dumps([d.summary() for d in drifts], indent=2))
    if dry_run and any(d.drifted for d in drifts):
        sys.exit(1)


@index.command("compat")
@click.option("--serve", "version", default=None, help="Make this registered model serve.")
@click.pass_obj
def index_compat(settings: Settings, version: str | None) -> None:
    """The outfit compatibility models (complete the look): which serves; --serve switches
    (a rollback: API replicas follow within STYLESTREAM_SERVING_REFRESH_S)."""

    def describe(m: dict[str, Any]) -> str:
        held = m["metrics"].get("held_out", {})
        return (
            f"labels={m['lineage'].get('label_fraction')} FITB={held.get('fitb')} "
            f"AUC={held.get('auc')}"
        )

    _side_models(settings, CompatModels, version, describe)
