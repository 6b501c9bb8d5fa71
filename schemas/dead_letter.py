"""The dead-letter envelope: what failed, where it came from, and the original bytes (inline,
or, when too large to travel in a Kafka message, kept aside by their SHA-256)."""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from schemas.events import utcnow

MAX_KEY_BYTES = 512
DEAD_LETTER_SCHEMA_VERSION = 2  # 2: originals kept aside when large (sha256, size, stored)


class ErrorKind(StrEnum):
    NOT_JSON = "not_json"
    SCHEMA_VIOLATION = "schema_violation"
    UNKNOWN_SCHEMA_VERSION = "unknown_schema_version"
    IMAGE_UNAVAILABLE = "image_unavailable"
    UNDECODABLE_IMAGE = "undecodable_image"
    IMAGE_TOO_LARGE = "image_too_large"
    UNSUPPORTED_IMAGE_FORMAT = "unsupported_image_format"
    KEY_MISMATCH = "key_mismatch"  # the Kafka key is not the product id
    PROCESSING_ERROR = "processing_error"  # this event alone failed where its neighbours did not
    STORE_ERROR = "store_error"  # a healthy store refused this event alone


class DeadLetter(BaseModel):
    """Sent to ``dead-letter.v1`` for every event the worker could not apply."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = Field(
        default=DEAD_LETTER_SCHEMA_VERSION, ge=1, le=DEAD_LETTER_SCHEMA_VERSION
    )
    original_base64: str = Field(
        description="The event's original bytes, base64-encoded ('' when kept aside)."
    )
    original_sha256: str | None = None
    original_size: int | None = None
    original_stored: bool = Field(
        default=False, description="The original is kept aside (Postgres), by its SHA-256."
    )
    original_key: str | None = None
    topic: str
    partition: int
    offset: int
    error_kind: ErrorKind
    error_message: str = Field(max_length=4000)
    product_id: str | None = None
    failed_at: datetime = Field(default_factory=utcnow)

    @classmethod
    def wrap(
        cls,
        original: bytes,
        *,
        topic: str,
        partition: int,
        offset: int,
        kind: ErrorKind,
        message: str,
        key: bytes | None = None,
        product_id: str | None = None,
        inline_bytes: int | None = None,
    ) -> DeadLetter:
        """``inline_bytes``: a larger original is not carried (the caller keeps it aside)."""
        inline = inline_bytes is None or len(original) <= inline_bytes
        return cls(
            original_base64=base64.b64encode(original).decode() if inline else "",
            original_sha256=hashlib.sha256(original).hexdigest(),
            original_size=len(original),
            original_stored=not inline,
            # bounded (a product's key is at most 128 characters; a longer one is a key
            # mismatch, never replayed as is), so a letter always fits a Kafka message
            original_key=key[:MAX_KEY_BYTES].decode("utf-8", "replace")
            if key is not None
            else None,
            topic=topic,
            partition=partition,
            offset=offset,
            error_kind=kind,
            error_message=message[:4000],
            product_id=product_id,
        )

    @property
    def origin(self) -> str:
        """Where the original was read: the letter's identity, and its Kafka key. A batch
        redelivered after a crash may send a letter again; it has the same origin, so readers
        (and the topic's compaction) keep one."""
        return f"{self.topic}/{self.partition}/{self.offset}"

    def original(self) -> bytes:
        """The inline original (see ``original_stored`` for one kept aside)."""
        if self.original_stored:
            raise ValueError("the original is kept aside: read it by original_sha256")
        return base64.b64decode(self.original_base64)
