"""Text search endpoints: words in, products out, an impression carrying the query text (so
clicks on text results become training pairs like any others)."""

from __future__ import annotations

import time

from fastapi import APIRouter

from api.errors import ApiError
from api.interactions import SessionHeader, UserHeader
from api.models import ResultItem, SearchResponse, TermScore, TextScore, TextSearchRequest
from api.routes import ERRORS, filters_of, require_content_type, respond, result_item
from api.state import ApiState, State, require_key
from processors.text import TextQueryError
from schemas.interactions import Query as SearchQuery
from search.text import LEXICAL_MODEL, TextQuery, TextResult
from stores.base import StoreTimeout

router = APIRouter(prefix="/v1", responses=ERRORS, dependencies=[require_key(search=True)])


def _items(
    state: ApiState, query: TextQuery, result: TextResult, explain: bool
) -> list[ResultItem]:
    summaries = state.summaries.get_summaries([h.product_id for h in result.hits])
    out = []
    for h in result.hits:
        parts = {}
        if explain:
            terms = [
                TermScore(term=t.text, weight=t.weight, match=round(m, 6))
                for t, m in zip(query.terms, h.terms, strict=True)
            ]
            parts["text"] = TextScore(
                lexical=round(h.lexical, 6),
                terms=terms,
                dense=None if h.dense is None else round(h.dense, 6),
                lexical_rank=h.lexical_rank,
                dense_rank=h.dense_rank,
                fusion="lexical" if result.model_version == LEXICAL_MODEL else "rrf",
            )
        meta = summaries.get(h.product_id, {})
        out.append(result_item(h.product_id, h.score, h.row, meta, **parts))
    return out


@router.post(
    "/search/text",
    dependencies=[require_content_type("application/json")],
    summary="Search by words (one query, or weighted and negative terms)",
)
def search_text(
    state: State,
    body: TextSearchRequest,
    x_session_id: SessionHeader = None,
    x_user_id: UserHeader = None,
) -> SearchResponse:
    started = time.perf_counter()
    asked = body.query if body.query is not None else body.terms
    assert asked is not None
    try:
        query = TextQuery.parse(asked, body.k, filters_of(body.filters), body.offset)
    except TextQueryError as exc:
        raise ApiError(422, "invalid_query", str(exc)) from exc
    try:
        result = state.text.search(query)
    except StoreTimeout as exc:
        raise ApiError(503, "busy", f"{exc}: retry shortly") from exc
    impression_query = SearchQuery(
        kind="text",
        text=query.text,
        terms=None if [t.weight for t in query.terms] == [1.0] else query.weights(),
        filters=body.filters.model_dump(exclude_defaults=True),
    )
    page = (body.k, body.offset, body.explain)
    items = _items(state, query, result, body.explain)
    who = (x_session_id, x_user_id)
    return respond(state, items, result.model_version, impression_query, page, who, started)
