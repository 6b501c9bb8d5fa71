"""Versioned search-interaction events: what a user was shown, and what they did with it.

- ``search.impression`` on ``impressions.v1``: one per search the API answers: the query,
  the ranked product ids with their positions, the model that ranked them.
- ``interaction.click`` (and ``interaction.add_to_cart`` / ``interaction.purchase``) on
  ``interactions.v1``: a frontend reports what the user did with a result of an impression.
Both are keyed by ``impression_id``, so an impression and its interactions land on the same
partition and one consumer can join them (the click-mining agent).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from schemas.events import ProductId, check_schema_version, utcnow
from schemas.outfits import Role

Identifier = Annotated[
    str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]*$")
]
MAX_SHOWN = 1000


class Query(BaseModel):
    """What was searched: an uploaded or linked image (by its SHA-256 and embedding), a product,
    text, (``modify``, added in v1) a product or an image with words that change it, or
    (``outfit``, added in v1) what goes with a product in a role: complete the look, whose
    clicks are outfit signals, not visual similarity."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["image", "product", "text", "modify", "outfit"]
    image_sha256: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the decoded RGB pixels"
    )
    embedding_f16: str | None = Field(
        default=None,
        max_length=16384,
        description="The query image's base embedding: little-endian float16, base64 (so ML "
        "teams can train on image queries without the image)",
    )
    product_id: ProductId | None = None
    text: str | None = Field(default=None, min_length=1, max_length=512)
    # A text query's weighted terms when it was asked with weights (its ``text`` is then the
    # positive terms): added in v1 as optional.
    terms: dict[str, float] | None = Field(
        default=None, max_length=16, exclude_if=lambda v: v is None
    )
    filters: dict[str, Any] = Field(default_factory=dict)
    # An outfit query's wanted role (its product_id: the item worn with it): added in v1.
    role: Role | None = Field(default=None, exclude_if=lambda v: v is None)

    @model_validator(mode="after")
    def _matches_kind(self) -> Query:
        given = {
            "image": self.image_sha256 is not None,
            "product": self.product_id is not None,
            "text": self.text is not None,
        }
        if (self.role is not None) != (self.kind == "outfit"):
            raise ValueError("an outfit query, and only one, carries a role")
        if self.kind == "modify":
            if not given["text"] or given["image"] == given["product"]:
                raise ValueError("a modify query carries its text and one product or image")
        elif self.kind == "outfit":
            if not given["product"] or given["image"] or given["text"]:
                raise ValueError("an outfit query carries its product and role alone")
        elif not given[self.kind] or sum(given.values()) != 1:
            raise ValueError(f"a {self.kind} query carries exactly its own field")
        if self.terms is not None and self.kind != "text":
            raise ValueError("only a text query carries terms")
        return self


class Shown(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    product_id: ProductId
    position: int = Field(ge=1, description="1-based rank on the page, offset included")


class _InteractionBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    impression_id: Identifier
    session_id: Identifier
    user_id: Identifier | None = None
    event_time: datetime = Field(default_factory=utcnow)


class SearchImpression(_InteractionBase):
    """A ranked result list the API returned."""

    type: Literal["search.impression"] = "search.impression"
    query: Query
    results: list[Shown] = Field(max_length=MAX_SHOWN)
    model_version: str = Field(min_length=1, max_length=128)

    @model_validator(mode="after")
    def _distinct_positions(self) -> SearchImpression:
        positions = [r.position for r in self.results]
        if len(set(positions)) != len(positions):
            raise ValueError("positions must be distinct")
        return self


class Interaction(_InteractionBase):
    """What a user did with one result of an impression."""

    type: Literal["interaction.click", "interaction.add_to_cart", "interaction.purchase"]
    product_id: ProductId
    position: int | None = Field(default=None, ge=1)


InteractionEvent = Annotated[SearchImpression | Interaction, Field(discriminator="type")]
_ADAPTER: TypeAdapter[SearchImpression | Interaction] = TypeAdapter(InteractionEvent)


def parse_interaction_event(payload: dict[str, Any]) -> SearchImpression | Interaction:
    """Validate a decoded JSON object. Raises UnknownSchemaVersion or pydantic.ValidationError."""
    check_schema_version(payload)
    return _ADAPTER.validate_python(payload)


def interaction_event_json_schema() -> dict[str, Any]:
    return _ADAPTER.json_schema()


class TrainingPair(BaseModel):
    """A click turned into a training example: the query, the clicked product (positive), the
    results shown above it and skipped (hard negatives) and sampled products (random
    negatives). ``pair_id`` = ``<impression_id>:<product_id>`` is unique: consumers of
    ``training-pairs.v1`` deduplicate on it, and Postgres keeps one row per id."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    type: Literal["training.pair"] = "training.pair"
    pair_id: str = Field(min_length=3, max_length=258)
    impression_id: Identifier
    session_id: Identifier
    user_id: Identifier | None = None
    query: Query
    positive: ProductId
    position: int = Field(ge=1)
    hard_negatives: list[ProductId]
    # The result position of each hard negative, aligned with hard_negatives: a trainer can
    # weight a skip by how likely it was seen (position bias). Added in v1 as optional.
    hard_negative_positions: list[int] = Field(default_factory=list)
    random_negatives: list[ProductId]
    interaction: Literal["interaction.click", "interaction.add_to_cart", "interaction.purchase"]
    ranker_model_version: str
    shown_at: datetime
    clicked_at: datetime
