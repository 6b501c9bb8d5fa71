"""Outfit labels over HTTP (issue 17). Writes go to ``outfits.v1`` as versioned events (the
worker's outfit agent writes Postgres, as for products), keyed by outfit id, authenticated like
the other writes; reads come from Postgres. A write answers 202 with the event's version: it is
readable once the worker has applied it."""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from kafka.errors import KafkaError
from pydantic import BaseModel, ConfigDict, Field

from api.errors import ApiError
from api.models import ErrorBody
from api.routes import ProductIdPath, require_content_type
from api.state import ApiState, State, require_key
from schemas.events import Text, utcnow
from schemas.outfits import (
    MAX_ITEMS,
    MIN_ITEMS,
    OutfitDelete,
    OutfitItem,
    OutfitUpsert,
    encode_outfit_event,
)
from stores.outfits import Outfit

OutfitIdPath = Annotated[
    str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]*$")
]
WRITE_ERRORS = {
    503: {"model": ErrorBody, "description": "Kafka did not acknowledge; retry"},
    **{code: {"model": ErrorBody} for code in (401, 413, 415, 422, 429)},
}
DELETE_ERRORS = {
    503: {"model": ErrorBody, "description": "Kafka did not acknowledge; retry"},
    **{code: {"model": ErrorBody} for code in (401, 422, 429)},
}


class OutfitRequest(BaseModel):
    """An outfit to create (no ``outfit_id``: one is made) or replace. The API assigns the
    version (the time in microseconds: a later write wins), so no caller can pin an outfit
    with a huge version; producers writing to outfits.v1 directly own their versions."""

    model_config = ConfigDict(extra="forbid")

    outfit_id: str | None = Field(
        default=None, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]*$"
    )
    items: list[OutfitItem] = Field(min_length=MIN_ITEMS, max_length=MAX_ITEMS)
    label: Literal["compatible", "incompatible"] = "compatible"
    label_confidence: float = Field(default=1.0, ge=0.0, le=1.0)
    # SIMULATED outfits are written to the topic by the stylist's generator, not through here
    source: Literal["editorial", "user"] = "user"
    title: Text | None = Field(default=None, max_length=256)


class OutfitAccepted(BaseModel):
    outfit_id: str
    version: int
    type: str


class OutfitView(BaseModel):
    outfit_id: str
    version: int
    label: str
    label_confidence: float
    source: str
    title: str | None
    items: list[OutfitItem]


class OutfitList(BaseModel):
    outfits: list[OutfitView]


def _view(o: Outfit) -> OutfitView:
    return OutfitView(
        outfit_id=o.outfit_id,
        version=o.version,
        label=o.label,
        label_confidence=round(o.label_confidence, 4),
        source=o.source,
        title=o.title,
        items=[OutfitItem(product_id=p, role=r) for r, p in o.items],  # type: ignore[arg-type]
    )


def _send(state: ApiState, event: OutfitUpsert | OutfitDelete) -> OutfitAccepted:
    """202 once Kafka has it: the worker applies it unless a newer version is stored."""
    event = event.model_copy(update={"produced_at": utcnow()})
    try:
        state.sender.send(state.settings.outfits_topic, event.outfit_id,
                          encode_outfit_event(event), timeout_s=10.0)  # fmt: skip
    except KafkaError as exc:
        raise ApiError(503, "events_unavailable", f"could not record the outfit: {exc}") from exc
    return OutfitAccepted(outfit_id=event.outfit_id, version=event.version, type=event.type)


def _now_version() -> int:
    return time.time_ns() // 1000


writes = APIRouter(prefix="/v1", dependencies=[require_key(search=False)])
reads = APIRouter(prefix="/v1", dependencies=[require_key(search=True)])


@writes.post(
    "/outfits",
    status_code=202,
    summary="Create or replace an outfit (applied by the worker)",
    dependencies=[require_content_type("application/json")],
    responses=WRITE_ERRORS,  # type: ignore[arg-type]
)
def put_outfit(state: State, body: OutfitRequest) -> OutfitAccepted:
    try:
        event = OutfitUpsert(
            outfit_id=body.outfit_id or f"outfit-{uuid.uuid4().hex}",
            version=_now_version(),
            items=body.items,
            label=body.label,
            label_confidence=body.label_confidence,
            source=body.source,
            title=body.title,
        )
    except ValueError as exc:  # one item per role, a product once, a dress alone
        raise ApiError(422, "invalid_outfit", str(exc)) from exc
    return _send(state, event)


@writes.delete(
    "/outfits/{outfit_id}",
    status_code=202,
    summary="Delete an outfit (applied by the worker)",
    responses=DELETE_ERRORS,  # type: ignore[arg-type]
)
def delete_outfit(state: State, outfit_id: OutfitIdPath) -> OutfitAccepted:
    return _send(state, OutfitDelete(outfit_id=outfit_id, version=_now_version()))


@reads.get(
    "/outfits/{outfit_id}",
    summary="One outfit",
    responses={code: {"model": ErrorBody} for code in (401, 404, 422, 429)},
)
def get_outfit(state: State, outfit_id: OutfitIdPath) -> OutfitView:
    found = state.outfits.get_outfits([outfit_id]).get(outfit_id)
    if found is None:
        raise ApiError(404, "unknown_outfit", f"outfit {outfit_id!r} does not exist")
    return _view(found)


@reads.get(
    "/products/{product_id}/outfits",
    summary="Outfits holding this product, newest first",
    responses={code: {"model": ErrorBody} for code in (401, 422, 429)},
)
def product_outfits(
    state: State,
    product_id: ProductIdPath,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> OutfitList:
    return OutfitList(outfits=[_view(o) for o in state.outfits.outfits_with(product_id, limit)])
