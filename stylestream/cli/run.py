"""``stylestream worker``, ``mine``, ``api`` and ``search``: the serving processes and the
command-line search (the read path of the API, through ``search/``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import uvicorn

from api.app import create_app
from config import assembly
from config.settings import Settings
from processors.errors import ProcessingError
from processors.images import decode_image
from processors.modify import ModifierError
from processors.text import TextQueryError
from schemas.attributes import BY_KEY
from search import Filters, Result, UnknownProduct
from search.modify import ModifyQuery, ModifyUnavailable
from search.outfits import CompatUnavailable, LookQuery
from search.text import TextQuery
from stores.base import StoreTimeout
from stores.postgres import PostgresRepository
from streams.miner import run_miner
from streams.worker import run_worker


def refuse_unsafe(settings: Settings) -> None:
    """In production (STYLESTREAM_ENV=production) a serving process does not start while a
    setting is unsafe: it says which, all at once."""
    problems = settings.production_problems() if settings.env == "production" else []
    if problems:
        listed = "".join(f"\n  - {p}" for p in problems)
        raise click.ClickException(f"refusing to start in production:{listed}")


@click.command()
@click.option("--loglevel", default="info", show_default=True)
@click.pass_obj
def worker(settings: Settings, loglevel: str) -> None:
    """Run a Faust worker: product events -> embeddings + colours -> Milvus and Postgres."""
    refuse_unsafe(settings)
    run_worker(settings, loglevel)


@click.command()
@click.option("--loglevel", default="info", show_default=True)
@click.pass_obj
def mine(settings: Settings, loglevel: str) -> None:
    """Run the click miner: impressions + clicks -> training pairs (Kafka and Postgres)."""
    refuse_unsafe(settings)
    run_miner(settings, loglevel)


@click.command()
@click.option("--host", default=None, help="Default: STYLESTREAM_API_HOST (127.0.0.1).")
@click.option("--port", default=None, type=int, help="Default: STYLESTREAM_API_PORT (8000).")
@click.pass_obj
def api(settings: Settings, host: str | None, port: int | None) -> None:
    """Serve the search API and the web page (uvicorn)."""
    refuse_unsafe(settings)
    uvicorn.run(
        create_app(settings),
        host=host or settings.api_host,
        port=port or settings.api_port,
        log_level="info",
        access_log=False,
        proxy_headers=False,  # the rate limit reads X-Forwarded-For from trusted proxies only
    )


@click.command()
@click.option("--image", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--product-id")
@click.option("--text", help='Words to search for ("black ankle boots").')
@click.option("--but", help='With --image or --product-id: words that change it ("in red").')
@click.option("--look", is_flag=True, help="With --product-id: what goes with it, per role.")
@click.option("--role", "roles", multiple=True, help="With --look: a role (repeatable).")
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
    text: str | None,
    but: str | None,
    look: bool,
    roles: tuple[str, ...],
    k: int,
    category: str | None,
    colour: str | None,
    attributes: tuple[str, ...],
    as_json: bool,
) -> None:
    """Visually similar products for an image file or an indexed product (changed by the
    words of --but); or products found by words; or (--look) what goes with a product."""
    if sum(x is not None for x in (image, product_id, text)) != 1:
        raise click.UsageError("give exactly one of --image, --product-id or --text")
    if look or roles:
        if product_id is None or but is not None:
            raise click.UsageError("--look completes a --product-id (no --but)")
        _show(_search_look(settings, LookQuery(product_id, roles, k)), as_json)
        return
    if but is not None and text is not None:
        raise click.UsageError("--but changes an --image or a --product-id")
    unknown = [a for a in attributes if a not in BY_KEY]
    if unknown:
        raise click.UsageError(f"unknown attribute keys {unknown} (see GET /v1/attributes)")
    filters = Filters(category=category, colour=colour, attributes=attributes)
    if text is not None:
        try:
            query = TextQuery.parse(text, k, filters)
        except TextQueryError as exc:
            raise click.UsageError(str(exc)) from exc
        _show(_search_text(settings, query), as_json)
        return
    if but is not None:
        try:
            limits = assembly.image_limits(settings)
            rgb = decode_image(image.read_bytes(), limits) if image else None
        except ProcessingError as exc:
            raise click.ClickException(str(exc)) from exc
        _show(_search_modify(settings, ModifyQuery(but, product_id, rgb, k, filters)), as_json)
        return
    service = assembly.open_search(settings)
    try:
        result: Result
        if image is not None:
            rgb = decode_image(image.read_bytes(), assembly.image_limits(settings))
            result = service.by_images([rgb], k, filters)[0]
        else:
            assert product_id is not None
            result = service.by_product(product_id, k, filters)
    except (ProcessingError, UnknownProduct) as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        service.targets.close()
    rows: list[dict[str, Any]] = [
        {
            "product_id": r.product_id,
            "category": r.item.row.category,
            "colour": r.item.row.primary_colour,
            "score": round(r.score, 4),
            "visual": round(r.visual, 4),
            "attribute_overlap": round(r.attributes, 4),
            "predicted_category": r.item.row.predicted_category,
            "attributes": list(r.item.row.attributes),
        }
        for r in result.ranked
    ]
    _show(rows, as_json)


def _search_text(settings: Settings, query: TextQuery) -> list[dict[str, Any]]:
    repo = PostgresRepository.from_dsn(settings.pg_dsn)
    search = assembly.open_text_search(settings, repo)
    try:
        result = search.search(query)
    finally:
        search.targets.close()
        search.close()
        repo.close()
    return [
        {
            "product_id": h.product_id,
            "category": h.row.category,
            "colour": h.row.primary_colour,
            "score": round(h.score, 6),
            "lexical": round(h.lexical, 4),
            "dense": None if h.dense is None else round(h.dense, 4),
            "ranker": result.model_version,
            "attributes": list(h.row.attributes),
        }
        for h in result.hits
    ]


def _search_modify(settings: Settings, query: ModifyQuery) -> list[dict[str, Any]]:
    repo = PostgresRepository.from_dsn(settings.pg_dsn)
    search = assembly.open_search(settings, repo)
    try:
        result = assembly.open_modify_search(settings, repo, search).search(query)
    except (ModifierError, ModifyUnavailable, UnknownProduct) as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        search.targets.close()
        repo.close()
    return [
        {
            "product_id": h.product_id,
            "category": h.row.category,
            "colour": h.row.primary_colour,
            "score": round(h.score, 6),
            "embedding": round(h.embedding, 4),
            "profile": round(h.profile, 4),
            "ranker": result.model_version,
            "attributes": list(h.row.attributes),
        }
        for h in result.hits
    ]


def _search_look(settings: Settings, query: LookQuery) -> list[dict[str, Any]]:
    repo = PostgresRepository.from_dsn(settings.pg_dsn)
    search = assembly.open_search(settings, repo)
    try:
        result = assembly.open_complete_the_look(settings, repo, search).complete(query)
    except (ValueError, CompatUnavailable, UnknownProduct, StoreTimeout) as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        search.targets.close()
        repo.close()
    return [
        {
            "role": role,
            "product_id": h.product_id,
            "category": h.row.category,
            "colour": h.row.primary_colour,
            "score": round(h.score, 6),
            "similarity": round(h.similarity, 4),
            "retrieved_rank": h.retrieved_rank,
            "ranker": result.model_version,
            "attributes": list(h.row.attributes),
        }
        for role, hits in result.by_role.items()
        for h in hits
    ]


def _show(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(rows))
        return
    for rank, r in enumerate(rows, 1):
        click.echo(
            f"{rank:2}. {r['product_id']:24} {r['category']!s:14} {r['colour']!s:8} "
            f"{r['score']:.4f}  {' '.join(r['attributes'])}"
        )
