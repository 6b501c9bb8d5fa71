"""Versioned product events on ``products.v1``.

Every event carries ``schema_version`` and a ``type`` discriminator. Consumers refuse versions
they do not know (dead-lettered as ``unknown_schema_version``) rather than guess.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    field_validator,
    model_validator,
)

from schemas.attributes import BY_KEY

SCHEMA_VERSION = 1
SUPPORTED_SCHEMA_VERSIONS = frozenset({SCHEMA_VERSION})

ProductId = Annotated[
    str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]*$")
]
# Versions are Postgres BIGINT and Milvus INT64: one past this fails the store write.
MAX_VERSION = 2**63 - 1


def _printable(value: str) -> str:
    """No control characters (a NUL fails Postgres text, the others only hide things)."""
    bad = next((c for c in value if ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0), None)
    if bad is not None:
        raise ValueError(f"control character U+{ord(bad):04X} is not allowed")
    return value


def utf8_bytes(limit: int) -> AfterValidator:
    """A length in UTF-8 bytes, as Milvus VARCHAR counts it (64 emoji are 256 bytes)."""

    def check(value: str) -> str:
        if len(value.encode()) > limit:
            raise ValueError(f"at most {limit} bytes in UTF-8")
        return value

    return AfterValidator(check)


Text = Annotated[str, AfterValidator(_printable)]


def utcnow() -> datetime:
    return datetime.now(UTC)


class ImageRef(BaseModel):
    """Where the product image is: exactly one of ``url``, ``path`` or ``data_base64``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: Text | None = Field(default=None, max_length=4096, pattern=r"^(https?|file)://")
    path: Text | None = Field(default=None, max_length=4096)
    data_base64: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> ImageRef:
        given = [v for v in (self.url, self.path, self.data_base64) if v is not None]
        if len(given) != 1:
            raise ValueError("image needs exactly one of url, path, data_base64")
        return self

    def describe(self) -> str:
        """A short reference for logs and the metadata store (never the bytes themselves)."""
        if self.url is not None:
            return self.url
        if self.path is not None:
            return f"file:{self.path}"
        return f"base64:{len(self.data_base64 or '')}chars"


class _EventBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    product_id: ProductId
    version: int = Field(
        ge=0, le=MAX_VERSION, description="Monotonically increasing per product; stale ones lose."
    )
    event_time: datetime = Field(default_factory=utcnow)
    produced_at: datetime | None = Field(
        default=None, description="Set by the producer when sent; used for freshness."
    )


class ProductUpsert(_EventBase):
    """A product was created or changed."""

    type: Literal["product.upsert"] = "product.upsert"
    title: Text = Field(min_length=1, max_length=512)
    brand: Text | None = Field(default=None, max_length=128)
    category: Annotated[Text, utf8_bytes(64)] = Field(min_length=1, max_length=64)
    price: Decimal = Field(ge=0, max_digits=12, decimal_places=2)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    image: ImageRef
    synthetic_fields: list[Annotated[Text, Field(max_length=64)]] = Field(
        default_factory=list,
        max_length=32,
        description="Fields whose values were invented (e.g. a demo catalogue's titles/prices).",
    )
    attributes: list[str] = Field(
        default_factory=list,
        max_length=64,
        description="Attributes the catalogue knows (taxonomy keys such as 'material.denim'); "
        "stored beside the ones the tagger predicts from the image.",
    )

    @field_validator("attributes")
    @classmethod
    def _known_attributes(cls, keys: list[str]) -> list[str]:
        unknown = sorted({k for k in keys if k not in BY_KEY})
        if unknown:
            raise ValueError(f"unknown attribute keys {unknown[:5]} (see /v1/attributes)")
        return list(dict.fromkeys(keys))


class ProductDelete(_EventBase):
    """A product was removed. Upserts with a version at or below this one are stale afterwards."""

    type: Literal["product.delete"] = "product.delete"


ProductEvent = Annotated[ProductUpsert | ProductDelete, Field(discriminator="type")]
_EVENT_ADAPTER: TypeAdapter[ProductUpsert | ProductDelete] = TypeAdapter(ProductEvent)


class UnknownSchemaVersion(ValueError):
    """The event declares a ``schema_version`` this code does not understand."""


def check_schema_version(payload: dict[str, Any]) -> None:
    """Consumers refuse versions they do not know rather than guess (any versioned event)."""
    version = payload.get("schema_version")
    # any JSON value may come here: a list or an object is unhashable, True == 1
    if type(version) is not int or version not in SUPPORTED_SCHEMA_VERSIONS:
        raise UnknownSchemaVersion(
            f"schema_version {version!r} is not supported "
            f"(supported: {sorted(SUPPORTED_SCHEMA_VERSIONS)})"
        )


def parse_product_event(payload: dict[str, Any]) -> ProductUpsert | ProductDelete:
    """Validate a decoded JSON object. Raises UnknownSchemaVersion or pydantic.ValidationError."""
    check_schema_version(payload)
    return _EVENT_ADAPTER.validate_python(payload)


def encode_event(event: ProductUpsert | ProductDelete) -> bytes:
    return event.model_dump_json(exclude_none=True).encode()


def product_event_json_schema() -> dict[str, Any]:
    return _EVENT_ADAPTER.json_schema()


def dumps_schema(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True)
