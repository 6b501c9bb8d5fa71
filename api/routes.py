"""/v1 endpoints. Handlers are sync: FastAPI runs them in its thread pool, so blocking store
and ONNX calls never stall the event loop."""

from __future__ import annotations

import time
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, Response, UploadFile

from api import images
from api.errors import ApiError
from api.interactions import SessionHeader, UserHeader, image_query, shown
from api.models import (
    MAX_ATTRIBUTE_FILTERS,
    MAX_K,
    MAX_NPROBE,
    MAX_OFFSET,
    MAX_OVERSAMPLING,
    AttributeGroupInfo,
    AttributeInfo,
    AttributeKey,
    Colour,
    ErrorBody,
    Facets,
    ImageSearchRequest,
    Paging,
    Product,
    ProductAttribute,
    ResultItem,
    ScoreComponents,
    SearchFilters,
    SearchResponse,
    SimilarQuery,
    Taxonomy,
)
from api.state import ApiState, State, require_key
from processors.colour import PALETTE_NAMES
from processors.ranking import Ranked
from schemas.attributes import GROUPS
from schemas.interactions import Query as SearchQuery
from schemas.interactions import SearchImpression
from search import Effort, Filters, ImageQuery, Result, UnknownProduct
from stores.base import Hit, IndexRow

ProductIdPath = Annotated[
    str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]*$")
]
ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody} for code in (401, 404, 413, 415, 422, 429, 503)
}

router = APIRouter(prefix="/v1", responses=ERRORS, dependencies=[require_key(search=True)])


def require_content_type(expected: str) -> Any:
    def check(request: Request) -> None:
        got = request.headers.get("content-type", "")
        if not got.startswith(expected):
            raise ApiError(
                415, "unsupported_media_type", f"expected {expected}, got {got or 'nothing'}"
            )

    return Depends(check)


def filters_of(f: SearchFilters) -> Filters:
    return Filters(
        category=f.category,
        colour=f.colour,
        min_price=f.min_price,
        max_price=f.max_price,
        attributes=tuple(f.attributes),
    )


def _effort(page: Paging) -> Effort | None:
    if page.oversampling is None and page.nprobe is None:
        return None
    return Effort(oversampling=page.oversampling, nprobe=page.nprobe)


def result_item(
    product_id: str, score: float, row: IndexRow, meta: dict[str, Any], **parts: Any
) -> ResultItem:
    """One result as the page shows it: the index row's fields, the summary's title and price
    (``parts``: the score's components, when explained)."""
    price = meta.get("price", row.price)
    return ResultItem(
        product_id=product_id,
        score=round(score, 6),
        category=row.category or None,
        title=meta.get("title"),
        price=float(price) if price is not None else None,
        currency=meta.get("currency"),
        primary_colour=row.primary_colour or None,
        predicted_category=row.predicted_category or None,
        attributes=list(row.attributes),
        thumbnail_url=f"/v1/products/{product_id}/thumbnail",
        **parts,
    )


def _items(state: ApiState, ranked: list[Ranked[Hit]], explain: bool) -> list[ResultItem]:
    summaries = state.summaries.get_summaries([r.product_id for r in ranked])
    weights = state.search.weights
    out = []
    for r in ranked:
        parts = {}
        if explain:
            parts["components"] = ScoreComponents(
                visual=round(r.visual, 6),
                colour=round(r.colour, 6),
                attributes=round(r.attributes, 6),
                weight_visual=weights.visual,
                weight_colour=weights.colour,
                weight_attributes=weights.attributes,
            )
        meta = summaries.get(r.product_id, {})
        out.append(result_item(r.product_id, r.score, r.item.row, meta, **parts))
    return out


def respond(
    state: ApiState,
    items: list[ResultItem],
    model_version: str,
    query: SearchQuery,
    page: tuple[int, int, bool],
    who: tuple[str | None, str | None],
    started: float,
) -> SearchResponse:
    """The response, and its impression on Kafka (queued: never waits for Kafka)."""
    k, offset, _ = page
    impression_id, session_id = emit_impression(state, items, model_version, query, offset, who)
    return SearchResponse(
        results=items,
        k=k,
        offset=offset,
        model_version=model_version,
        took_ms=round((time.perf_counter() - started) * 1000, 2),
        impression_id=impression_id,
        session_id=session_id,
    )


def emit_impression(
    state: ApiState,
    items: list[ResultItem],
    model_version: str,
    query: SearchQuery,
    offset: int,
    who: tuple[str | None, str | None],
) -> tuple[str, str]:
    """The results shown, as an impression on Kafka: (its id, the session id)."""
    session_id = state.sessions.session(who[0])
    impression = SearchImpression(
        impression_id=state.sessions.impression(session_id),
        session_id=session_id,
        user_id=who[1],
        query=query,
        results=shown([i.product_id for i in items], offset),
        model_version=model_version,
    )
    state.impressions.emit(impression)
    return impression.impression_id, session_id


def _respond(
    state: ApiState,
    result: Result,
    query: SearchQuery,
    page: tuple[int, int, bool],
    who: tuple[str | None, str | None],
    started: float,
) -> SearchResponse:
    items = _items(state, result.ranked, page[2])
    return respond(state, items, result.model_version, query, page, who, started)


def _search_image(
    state: ApiState,
    rgb: np.ndarray,
    filters: SearchFilters,
    page: tuple[int, int, bool],
    who: tuple[str | None, str | None],
    effort: Effort | None,
) -> SearchResponse:
    started = time.perf_counter()
    k, offset, _ = page
    result = state.batcher.search(ImageQuery(rgb, k, filters_of(filters), offset, effort))
    assert result.vector is not None
    base = None if state.search.query_encoder is not None else result.vector
    query = image_query(rgb, base, filters.model_dump(exclude_defaults=True))
    return _respond(state, result, query, page, who, started)


@router.post(
    "/search",
    dependencies=[require_content_type("application/json")],
    summary="Search by image (JSON: image_url or image_base64)",
)
def search_json(
    state: State,
    body: ImageSearchRequest,
    x_session_id: SessionHeader = None,
    x_user_id: UserHeader = None,
) -> SearchResponse:
    if body.image_url is not None:
        raw = images.fetch_url(body.image_url, state.limits)  # no decode turn held meanwhile
        with state.decoding():
            rgb = images.from_bytes(raw, state.limits)
    else:
        assert body.image_base64 is not None
        with state.decoding():
            rgb = images.from_base64(body.image_base64, state.limits)
    page = (body.k, body.offset, body.explain)
    who = (x_session_id, x_user_id)
    return _search_image(state, rgb, body.filters, page, who, _effort(body))


@router.post(
    "/search/upload",
    dependencies=[require_content_type("multipart/form-data")],
    summary="Search by image (multipart upload)",
)
def search_upload(
    state: State,
    image: Annotated[UploadFile, File(description="The query image")],
    category: Annotated[str | None, Form(min_length=1, max_length=64)] = None,
    colour: Annotated[Colour | None, Form()] = None,
    min_price: Annotated[float | None, Form(ge=0, le=1e9)] = None,
    max_price: Annotated[float | None, Form(ge=0, le=1e9)] = None,
    attributes: Annotated[
        list[AttributeKey] | None,  # type: ignore[valid-type]
        Form(max_length=MAX_ATTRIBUTE_FILTERS),
    ] = None,
    k: Annotated[int, Form(ge=1, le=MAX_K)] = 10,
    offset: Annotated[int, Form(ge=0, le=MAX_OFFSET)] = 0,
    explain: Annotated[bool, Form()] = False,
    oversampling: Annotated[int | None, Form(ge=1, le=MAX_OVERSAMPLING)] = None,
    nprobe: Annotated[int | None, Form(ge=1, le=MAX_NPROBE)] = None,
    x_session_id: SessionHeader = None,
    x_user_id: UserHeader = None,
) -> SearchResponse:
    try:
        filters = SearchFilters(
            category=category,
            colour=colour,
            min_price=min_price,
            max_price=max_price,
            attributes=attributes or [],
        )
        effort = _effort(Paging(oversampling=oversampling, nprobe=nprobe))
    except ValueError as exc:
        raise ApiError(422, "invalid_request", str(exc)) from exc
    raw = image.file.read(state.limits.max_bytes + 1)
    if len(raw) > state.limits.max_bytes:
        raise ApiError(413, "image_too_large", f"image exceeds {state.limits.max_bytes} bytes")
    with state.decoding():
        rgb = images.from_bytes(raw, state.limits)
    page = (k, offset, explain)
    return _search_image(state, rgb, filters, page, (x_session_id, x_user_id), effort)


@router.get("/products/{product_id}/similar", summary="More like this product")
def similar(
    state: State,
    product_id: ProductIdPath,
    query: Annotated[SimilarQuery, Query()],
    x_session_id: SessionHeader = None,
    x_user_id: UserHeader = None,
) -> SearchResponse:
    started = time.perf_counter()
    try:
        result = state.search.by_product(
            product_id, query.k, filters_of(query), query.offset, _effort(query)
        )
    except UnknownProduct as exc:
        raise ApiError(404, "unknown_product", str(exc)) from exc
    asked = SearchQuery(
        kind="product",
        product_id=product_id,
        filters=SearchFilters.model_validate(
            query.model_dump(include=set(SearchFilters.model_fields))
        ).model_dump(exclude_defaults=True),
    )
    page = (query.k, query.offset, query.explain)
    return _respond(state, result, asked, page, (x_session_id, x_user_id), started)


@router.get("/products/{product_id}", summary="Product metadata")
def product(state: State, product_id: ProductIdPath) -> Product:
    row = state.repo.get_product(product_id)
    if row is None:
        raise ApiError(404, "unknown_product", f"product {product_id!r} does not exist")
    row["price"] = float(row["price"])
    attributes = [
        ProductAttribute(**a) for a in state.repo.get_attributes([product_id]).get(product_id, [])
    ]
    return Product(
        **row, attributes=attributes, thumbnail_url=f"/v1/products/{product_id}/thumbnail"
    )


@router.get(
    "/products/{product_id}/thumbnail",
    response_class=Response,
    responses={200: {"content": {"image/webp": {}}}},
    summary="Product thumbnail (WebP)",
)
def thumbnail(state: State, product_id: ProductIdPath) -> Response:
    data = state.repo.get_thumbnail(product_id)
    if data is None:
        raise ApiError(404, "unknown_product", f"no thumbnail for {product_id!r}")
    return Response(data, media_type="image/webp", headers={"Cache-Control": "max-age=300"})


@router.get("/attributes", summary="The attribute taxonomy, with product counts")
def attributes(state: State) -> Taxonomy:
    rows = state.repo.taxonomy()
    groups = []
    for group in GROUPS:
        members = [
            AttributeInfo(
                key=r["key"],
                name=r["name"],
                description=r["description"],
                source=r["source"],
                parent=r["parent"],
                products=r["products"],
            )
            for r in rows
            if r["group_key"] == group.key
        ]
        if members:
            groups.append(
                AttributeGroupInfo(
                    key=group.key,
                    name=group.name,
                    description=group.description,
                    exclusive=group.exclusive,
                    attributes=members,
                )
            )
    version = max((r["taxonomy_version"] for r in rows), default=0)
    return Taxonomy(taxonomy_version=version, attributes=len(rows), groups=groups)


@router.get("/facets", summary="Filter values for the page")
def facets(state: State) -> Facets:
    return Facets(
        categories=state.repo.categories(),
        colours=list(PALETTE_NAMES),
        products=state.repo.count_products(),
    )
