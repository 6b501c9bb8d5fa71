"""Complete the look (issue 17): what goes with a product, per outfit role, reranked by the
serving compatibility model. Each role's list is its own impression (kind ``outfit``, the
product and the role), so clicks on it reach the miner as outfit signals."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Query

from api.errors import ApiError
from api.interactions import SessionHeader, UserHeader
from api.models import LookResponse, LookRole, LookScore, ResultItem
from api.routes import ERRORS, ProductIdPath, emit_impression, result_item
from api.state import ApiState, State, require_key
from schemas.interactions import Query as SearchQuery
from search.outfits import (
    MAX_PER_ROLE,
    ROLE_DEPARTMENTS,
    CompatUnavailable,
    LookHit,
    LookQuery,
    NoOutfitRole,
    UnknownRole,
)
from search.service import UnknownProduct
from stores.base import StoreTimeout

router = APIRouter(
    prefix="/v1",
    responses={**ERRORS, 409: ERRORS[404]},
    dependencies=[require_key(search=True)],
)

RolesParam = Annotated[
    str | None,
    Query(
        max_length=100,
        pattern=r"^[a-z]+(,[a-z]+)*$",
        description=f"Comma-separated roles of {', '.join(ROLE_DEPARTMENTS)} (none: what the "
        "product's role is worn with)",
    ),
]


def _items(state: ApiState, hits: list[LookHit], explain: bool) -> list[ResultItem]:
    summaries = state.summaries.get_summaries([h.product_id for h in hits])
    out = []
    for h in hits:
        parts = {}
        if explain:
            parts["look"] = LookScore(
                compatibility=round(h.score, 6),
                similarity=round(h.similarity, 6),
                retrieved_rank=h.retrieved_rank,
            )
        meta = summaries.get(h.product_id, {})
        out.append(result_item(h.product_id, h.score, h.row, meta, **parts))
    return out


@router.get(
    "/products/{product_id}/complete-the-look",
    summary="What goes with this product, per outfit role",
)
def complete_the_look(
    state: State,
    product_id: ProductIdPath,
    roles: RolesParam = None,
    k: Annotated[int, Query(ge=1, le=MAX_PER_ROLE)] = 5,
    explain: bool = False,
    x_session_id: SessionHeader = None,
    x_user_id: UserHeader = None,
) -> LookResponse:
    started = time.perf_counter()
    wanted = tuple(roles.split(",")) if roles else ()
    try:
        with state.looking():
            result = state.looks.complete(LookQuery(product_id, wanted, k))
    except UnknownRole as exc:
        raise ApiError(422, "invalid_query", str(exc)) from exc
    except NoOutfitRole as exc:
        raise ApiError(422, "no_outfit_role", str(exc)) from exc
    except UnknownProduct as exc:
        raise ApiError(404, "unknown_product", str(exc)) from exc
    except CompatUnavailable as exc:
        raise ApiError(409, "no_compatibility_model", str(exc)) from exc
    except StoreTimeout as exc:
        raise ApiError(503, "busy", f"{exc}: retry shortly") from exc
    who = (x_session_id, x_user_id)
    out, session_id = [], ""
    for role, hits in result.by_role.items():
        items = _items(state, hits, explain)
        query = SearchQuery(kind="outfit", product_id=product_id, role=role)  # type: ignore[arg-type]
        impression_id, session_id = emit_impression(
            state, items, result.model_version, query, 0, who
        )
        who = (session_id, x_user_id)  # one session for every role's impression
        out.append(LookRole(role=role, results=items, impression_id=impression_id))
    return LookResponse(
        product_id=product_id,
        product_role=result.product_role,
        roles=out,
        model_version=result.model_version,
        took_ms=round((time.perf_counter() - started) * 1000, 2),
        session_id=session_id or state.sessions.session(x_session_id),
    )
