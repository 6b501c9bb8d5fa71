"""Image + text modifier search: a product or an image, and words that change it ("in red",
"with long sleeves", "without stripes"); the impression carries both, so clicks on these
results are mined like any others."""

from __future__ import annotations

import time

import numpy as np
from fastapi import APIRouter

from api import images
from api.errors import ApiError
from api.interactions import SessionHeader, UserHeader, image_query
from api.models import ModifyScore, ModifySearchRequest, ResultItem, SearchResponse
from api.routes import ERRORS, filters_of, require_content_type, respond, result_item
from api.state import ApiState, State, require_key
from processors.modify import ModifierError, check_modifier
from schemas.interactions import Query as SearchQuery
from search.modify import ModifyQuery, ModifyResult, ModifyUnavailable
from search.service import UnknownProduct
from stores.base import StoreTimeout

# 409: no modifier model serves, or it reads another base model's space (as an incompatible
# query model is answered): retrying will not help until one is trained or re-embedded
router = APIRouter(
    prefix="/v1",
    responses={**ERRORS, 409: ERRORS[404]},
    dependencies=[require_key(search=True)],
)


def _items(state: ApiState, result: ModifyResult, explain: bool) -> list[ResultItem]:
    summaries = state.summaries.get_summaries([h.product_id for h in result.hits])
    out = []
    for h in result.hits:
        parts = {}
        if explain:
            parts["modify"] = ModifyScore(
                embedding=round(h.embedding, 6), profile=round(h.profile, 6)
            )
        meta = summaries.get(h.product_id, {})
        out.append(result_item(h.product_id, h.score, h.row, meta, **parts))
    return out


def _reference(state: ApiState, body: ModifySearchRequest) -> np.ndarray | None:
    if body.image_url is not None:
        raw = images.fetch_url(body.image_url, state.limits)  # no decode turn held meanwhile
        with state.decoding():
            return images.from_bytes(raw, state.limits)
    if body.image_base64 is not None:
        with state.decoding():
            return images.from_base64(body.image_base64, state.limits)
    return None


@router.post(
    "/search/modify",
    dependencies=[require_content_type("application/json")],
    summary="Like this product or image, but changed by words",
)
def search_modify(
    state: State,
    body: ModifySearchRequest,
    x_session_id: SessionHeader = None,
    x_user_id: UserHeader = None,
) -> SearchResponse:
    started = time.perf_counter()
    try:
        text = check_modifier(body.text)  # as read, and as the impression carries it
    except ModifierError as exc:
        raise ApiError(422, "invalid_query", str(exc)) from exc
    rgb = _reference(state, body)
    query = ModifyQuery(text, body.product_id, rgb, body.k, filters_of(body.filters),
                        body.offset)  # fmt: skip
    try:
        with state.modifying():
            result = state.modify.search(query)
    except UnknownProduct as exc:
        raise ApiError(404, "unknown_product", str(exc)) from exc
    except ModifyUnavailable as exc:
        raise ApiError(409, "no_modifier_model", str(exc)) from exc
    except StoreTimeout as exc:
        raise ApiError(503, "busy", f"{exc}: retry shortly") from exc
    filters = body.filters.model_dump(exclude_defaults=True)
    if rgb is not None:
        shown = image_query(rgb, result.base, filters)
        asked = SearchQuery(kind="modify", text=query.text, image_sha256=shown.image_sha256,
                            embedding_f16=shown.embedding_f16, filters=filters)  # fmt: skip
    else:
        asked = SearchQuery(kind="modify", text=query.text, product_id=body.product_id,
                            filters=filters)  # fmt: skip
    page = (body.k, body.offset, body.explain)
    items = _items(state, result, body.explain)
    return respond(state, items, result.model_version, asked, page, (x_session_id, x_user_id),
                   started)  # fmt: skip
