"""Search impressions out (api/events.py sends them), interactions in.

- Interactions (clicks, add-to-cart, purchases) are the labels: ``POST /v1/interactions``
  answers 202 only once Kafka has acknowledged the event, 503 if it cannot, so a frontend can
  retry and no click is silently lost.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, Header
from kafka.errors import KafkaError
from pydantic import BaseModel, ConfigDict, Field

from api.errors import ApiError
from api.models import ErrorBody
from api.state import State, require_key
from schemas.events import ProductId
from schemas.interactions import Identifier, Interaction, Query, Shown
from stores.rows import encode_base64

SessionHeader = Annotated[
    str | None,
    Header(alias="X-Session-Id", max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]*$"),
]
UserHeader = Annotated[
    str | None,
    Header(alias="X-User-Id", max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]*$"),
]


def image_query(rgb: np.ndarray, embedding: np.ndarray | None, filters: dict[str, object]) -> Query:
    """An image query: the SHA-256 of its decoded pixels (the same for an upload, base64 or a
    URL of one image) and its base embedding (float16, base64; None when a compact query model
    embedded it: heads train on base embeddings only)."""
    return Query(
        kind="image",
        image_sha256=hashlib.sha256(np.ascontiguousarray(rgb).tobytes()).hexdigest(),
        embedding_f16=None if embedding is None else encode_base64(embedding),
        filters=filters,
    )


class InteractionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    impression_id: Identifier = Field(description="From the search response")
    product_id: ProductId
    position: int | None = Field(default=None, ge=1, le=1000)
    type: Literal["click", "add_to_cart", "purchase"] = "click"


class InteractionAccepted(BaseModel):
    interaction: Interaction


router = APIRouter(prefix="/v1", dependencies=[require_key(search=False)])


@router.post(
    "/interactions",
    status_code=202,
    summary="Report a click (or add-to-cart, purchase) on a search result",
    responses={
        503: {"description": "Kafka did not acknowledge; retry"},
        **{code: {"model": ErrorBody} for code in (401, 413, 422, 429)},
    },
)
def report_interaction(
    state: State,
    body: InteractionRequest,
    x_session_id: SessionHeader = None,
    x_user_id: UserHeader = None,
) -> InteractionAccepted:
    """Only on an impression this API served, in the session it served it in (the search
    response's ``impression_id`` and ``session_id``, sent back as X-Session-Id)."""
    if not state.sessions.served(body.impression_id, x_session_id):
        raise ApiError(
            422,
            "unknown_impression",
            "report interactions with a search response's impression_id, sending its "
            "session_id as X-Session-Id",
        )
    assert x_session_id is not None
    event = Interaction(
        type=f"interaction.{body.type}",  # type: ignore[arg-type]
        impression_id=body.impression_id,
        session_id=x_session_id,
        user_id=x_user_id,
        product_id=body.product_id,
        position=body.position,
    )
    try:
        state.sender.send(
            state.settings.interactions_topic,
            event.impression_id,
            event.model_dump_json().encode(),
            timeout_s=10.0,
        )
    except KafkaError as exc:
        raise ApiError(
            503, "events_unavailable", f"could not record the interaction: {exc}"
        ) from exc
    return InteractionAccepted(interaction=event)


def shown(product_ids: list[str], offset: int) -> list[Shown]:
    return [Shown(product_id=p, position=offset + i) for i, p in enumerate(product_ids, 1)]
