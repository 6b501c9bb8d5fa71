"""Request and response bodies of the API (the OpenAPI document is generated from these)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from processors.colour import PALETTE_NAMES
from processors.modify import MAX_MODIFIER_CHARS
from processors.text import MAX_TERM_CHARS, MAX_TERMS, MAX_WEIGHT
from schemas.attributes import BY_KEY
from schemas.events import ProductId, Text

Colour = Literal[PALETTE_NAMES]  # type: ignore[valid-type]
AttributeKey = Literal[tuple(BY_KEY)]  # type: ignore[valid-type]
MAX_ATTRIBUTE_FILTERS = 32
MAX_K = 100
MAX_OVERSAMPLING = 64
MAX_NPROBE = 4096
MAX_OFFSET = 900
MAX_BASE64_CHARS = (10 * 1024 * 1024 * 4) // 3 + 4  # the default image byte limit, encoded


class SearchFilters(BaseModel):
    """AND-ed together. Values are matched exactly; they are never spliced into expressions."""

    model_config = ConfigDict(extra="forbid")

    # the events' own text rule: no control characters (a NUL cannot even reach Postgres)
    category: Text | None = Field(default=None, min_length=1, max_length=64)
    colour: Colour | None = Field(default=None, description="Primary colour of the item")
    min_price: float | None = Field(default=None, ge=0, le=1e9)
    max_price: float | None = Field(default=None, ge=0, le=1e9)
    attributes: list[AttributeKey] = Field(  # type: ignore[valid-type]
        default_factory=list,
        max_length=MAX_ATTRIBUTE_FILTERS,
        description="Taxonomy keys (see /v1/attributes): a product needs at least one of the "
        "keys given in each group, and every group given",
    )

    @model_validator(mode="after")
    def _price_range(self) -> SearchFilters:
        if (
            self.min_price is not None
            and self.max_price is not None
            and self.min_price > self.max_price
        ):
            raise ValueError("min_price must not exceed max_price")
        return self


class Page(BaseModel):
    k: int = Field(default=10, ge=1, le=MAX_K)
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET)
    explain: bool = Field(default=False, description="Return each result's score components")


class Paging(Page):
    oversampling: int | None = Field(
        default=None,
        ge=1,
        le=MAX_OVERSAMPLING,
        description="Binary serving mode: Hamming candidates per result before the float "
        "rerank (default: the server's setting; ignored in float mode)",
    )
    nprobe: int | None = Field(
        default=None,
        ge=1,
        le=MAX_NPROBE,
        description="IVF indexes: lists searched (default: the server's setting; ignored by "
        "HNSW and exact indexes)",
    )


class SimilarQuery(SearchFilters, Paging):
    """Query parameters of more-like-this."""


class ImageSearchRequest(Paging):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"oneOf": [{"required": ["image_url"]}, {"required": ["image_base64"]}]},
    )

    image_url: str | None = Field(
        default=None, max_length=2048, pattern=r"^https?://", description="http(s) only"
    )
    image_base64: str | None = Field(
        default=None,
        max_length=MAX_BASE64_CHARS,
        description="The encoded image, base64 (at most 10 MiB decoded)",
    )
    filters: SearchFilters = Field(default_factory=SearchFilters)

    @model_validator(mode="after")
    def _one_image(self) -> ImageSearchRequest:
        if (self.image_url is None) == (self.image_base64 is None):
            raise ValueError("give exactly one of image_url or image_base64")
        return self


class TextSearchRequest(Page):
    """A text query: ``query`` (its words one term, each ``-word`` excluded), or ``terms``
    weighted (a negative weight demotes what the term matches; -1 or less excludes products
    with all of its words)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"oneOf": [{"required": ["query"]}, {"required": ["terms"]}]},
    )

    query: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_TERM_CHARS,
        description="Words; each -word excludes that word",
        examples=["black ankle boots -heel"],
    )
    terms: dict[str, float] | None = Field(
        default=None,
        max_length=MAX_TERMS,
        description=f"term -> weight, each weight non-zero within +-{MAX_WEIGHT:g}",
        examples=[{"black boots": 1, "heel": -0.5}],
    )
    filters: SearchFilters = Field(default_factory=SearchFilters)

    @model_validator(mode="after")
    def _one_query(self) -> TextSearchRequest:
        if (self.query is None) == (self.terms is None):
            raise ValueError("give exactly one of query or terms")
        return self


class TermScore(BaseModel):
    term: str
    weight: float
    match: float = Field(description="How well the product's words match the term")


class ModifySearchRequest(Page):
    """A reference (an indexed product, or an image) and words that change it."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "oneOf": [
                {"required": ["text", "product_id"]},
                {"required": ["text", "image_url"]},
                {"required": ["text", "image_base64"]},
            ]
        },
    )

    text: Text = Field(
        min_length=1,
        max_length=MAX_MODIFIER_CHARS,
        description="What to change",
        examples=["in red", "with long sleeves", "without stripes"],
    )
    product_id: ProductId | None = None
    image_url: str | None = Field(
        default=None, max_length=2048, pattern=r"^https?://", description="http(s) only"
    )
    image_base64: str | None = Field(
        default=None,
        max_length=MAX_BASE64_CHARS,
        description="The encoded image, base64 (at most 10 MiB decoded)",
    )
    filters: SearchFilters = Field(default_factory=SearchFilters)

    @model_validator(mode="after")
    def _one_reference(self) -> ModifySearchRequest:
        given = [self.product_id, self.image_url, self.image_base64]
        if sum(v is not None for v in given) != 1:
            raise ValueError("give exactly one of product_id, image_url or image_base64")
        return self


class ModifyScore(BaseModel):
    embedding: float = Field(description="The embedding parts' share of score")
    profile: float = Field(description="The attribute and colour profile's share of score")


class LookScore(BaseModel):
    compatibility: float = Field(description="The compatibility model's score beside the product")
    similarity: float = Field(description="The image index's score, which retrieved it")
    retrieved_rank: int = Field(description="Its place among the role's candidates, 1 first")


class TextScore(BaseModel):
    lexical: float = Field(description="Full-text rank: sum over terms of weight x match")
    terms: list[TermScore]
    dense: float | None = Field(
        default=None,
        description="Cosine of the product's text vector to the weighted terms' vector "
        "(null: not among the dense results, or no text model serves)",
    )
    lexical_rank: int | None = Field(default=None, description="1-based rank by words alone")
    dense_rank: int | None = Field(default=None, description="1-based rank by text vectors")
    fusion: str = Field(
        default="lexical",
        description="How score was made: 'lexical' (words alone) or 'rrf' (sum of "
        "1 / (60 + rank) over both sides)",
    )


class ScoreComponents(BaseModel):
    visual: float = Field(description="Cosine similarity of the image embeddings")
    colour: float = Field(description="Histogram intersection of the colour shares in the ROI")
    attributes: float = Field(description="Weighted overlap of the predicted attributes")
    weight_visual: float
    weight_colour: float
    weight_attributes: float


class ResultItem(BaseModel):
    product_id: str
    score: float
    category: str | None = None
    title: str | None = None
    price: float | None = None
    currency: str | None = None
    primary_colour: str | None = None
    predicted_category: str | None = None
    attributes: list[str] = Field(default_factory=list)
    thumbnail_url: str
    components: ScoreComponents | None = None
    text: TextScore | None = Field(default=None, description="A text query's score parts")
    modify: ModifyScore | None = Field(default=None, description="A modifier query's parts")
    look: LookScore | None = Field(default=None, description="A complete-the-look result's parts")


class SearchResponse(BaseModel):
    results: list[ResultItem]
    k: int
    offset: int
    model_version: str
    took_ms: float
    impression_id: str = Field(description="Report clicks on these results with it")
    session_id: str = Field(
        description="The session this API issued (X-Session-Id as sent when it issued that "
        "one, else a new one): send it as X-Session-Id next time and with clicks"
    )


class ProductAttribute(BaseModel):
    attribute_key: str
    confidence: float
    source: str
    model_version: str | None = None


class Product(BaseModel):
    product_id: str
    version: int
    title: str
    brand: str | None
    category: str
    price: float
    currency: str
    primary_colour: str
    colour_fractions: dict[str, float]
    roi_box: list[int]
    image_width: int
    image_height: int
    synthetic_fields: list[str]
    model_version: str
    predicted_category: str | None = None
    category_confidence: float | None = None
    tagger_version: str | None = None
    attributes: list[ProductAttribute] = Field(default_factory=list)
    event_time: datetime
    indexed_at: datetime
    thumbnail_url: str


class AttributeInfo(BaseModel):
    key: str
    name: str
    description: str
    source: str = Field(description="model (predicted), derived, or catalogue (from events)")
    parent: str | None = None
    products: int = Field(description="Products carrying it")


class AttributeGroupInfo(BaseModel):
    key: str
    name: str
    description: str
    exclusive: bool
    attributes: list[AttributeInfo]


class Taxonomy(BaseModel):
    taxonomy_version: int
    attributes: int
    groups: list[AttributeGroupInfo]


class Facets(BaseModel):
    categories: list[str]
    colours: list[str]
    products: int


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class Health(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)


class LookRole(BaseModel):
    role: str
    results: list[ResultItem]
    impression_id: str = Field(description="Report clicks on this role's results with it")


class LookResponse(BaseModel):
    product_id: str
    product_role: str = Field(description="The product's outfit role, from its department")
    roles: list[LookRole]
    model_version: str
    took_ms: float
    session_id: str = Field(description="Send it as X-Session-Id next time and with clicks")
