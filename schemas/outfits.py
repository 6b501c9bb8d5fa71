"""Versioned outfit events on ``outfits.v1`` (issue 17), keyed by outfit id.

An outfit is a set of products worn together, one per role, with a label: ``compatible`` or
``incompatible``, from a source (``editorial``: a stylist's; ``simulated``: the SIMULATED
stylist's, never real data; ``user``: a shopper's), at a confidence. Creating and changing an
outfit are one event, ``outfit.upsert``, at a higher version; ``outfit.delete`` removes it and
every upsert at or below its version is stale afterwards (as for products).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from schemas.events import MAX_VERSION, ProductId, Text, check_schema_version, utcnow

ROLES = ("top", "bottom", "dress", "outer", "shoes", "bag", "accessory")
SOURCES = ("editorial", "simulated", "user")
LABELS = ("compatible", "incompatible")
MIN_ITEMS, MAX_ITEMS = 2, len(ROLES)

OutfitId = Annotated[
    str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]*$")
]
Role = Literal["top", "bottom", "dress", "outer", "shoes", "bag", "accessory"]


class OutfitItem(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    product_id: ProductId
    role: Role


class _OutfitBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    outfit_id: OutfitId
    version: int = Field(
        ge=0, le=MAX_VERSION, description="Monotonically increasing per outfit; stale ones lose."
    )
    event_time: datetime = Field(default_factory=utcnow)
    produced_at: datetime | None = Field(
        default=None, description="Set by the producer when sent; used for freshness."
    )


class OutfitUpsert(_OutfitBase):
    """An outfit was created or changed."""

    type: Literal["outfit.upsert"] = "outfit.upsert"
    items: list[OutfitItem] = Field(min_length=MIN_ITEMS, max_length=MAX_ITEMS)
    label: Literal["compatible", "incompatible"] = "compatible"
    label_confidence: float = Field(default=1.0, ge=0.0, le=1.0)
    source: Literal["editorial", "simulated", "user"]
    title: Text | None = Field(default=None, max_length=256)

    @model_validator(mode="after")
    def _one_per_role(self) -> OutfitUpsert:
        roles = [i.role for i in self.items]
        if len(set(roles)) != len(roles):
            raise ValueError("an outfit holds one item per role")
        products = [i.product_id for i in self.items]
        if len(set(products)) != len(products):
            raise ValueError("an outfit holds a product once")
        if "dress" in roles and ({"top", "bottom"} & set(roles)):
            raise ValueError("a dress stands for top and bottom: not beside either")
        return self


class OutfitDelete(_OutfitBase):
    """An outfit was removed."""

    type: Literal["outfit.delete"] = "outfit.delete"


OutfitEvent = Annotated[OutfitUpsert | OutfitDelete, Field(discriminator="type")]
_ADAPTER: TypeAdapter[OutfitUpsert | OutfitDelete] = TypeAdapter(OutfitEvent)


def parse_outfit_event(payload: dict[str, Any]) -> OutfitUpsert | OutfitDelete:
    """Validate a decoded JSON object. Raises UnknownSchemaVersion or pydantic.ValidationError."""
    check_schema_version(payload)
    return _ADAPTER.validate_python(payload)


def encode_outfit_event(event: OutfitUpsert | OutfitDelete) -> bytes:
    return event.model_dump_json(exclude_none=True).encode()


def outfit_event_json_schema() -> dict[str, Any]:
    return _ADAPTER.json_schema()
