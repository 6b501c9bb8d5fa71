"""The dead-letter envelope: what failed, where it came from, and the original bytes."""

from __future__ import annotations

import base64
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from schemas.events import utcnow

DEAD_LETTER_SCHEMA_VERSION = 1


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

    schema_version: int = DEAD_LETTER_SCHEMA_VERSION
    original_base64: str = Field(description="The event's original bytes, base64-encoded.")
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
    ) -> DeadLetter:
        return cls(
            original_base64=base64.b64encode(original).decode(),
            original_key=key.decode("utf-8", "replace") if key is not None else None,
            topic=topic,
            partition=partition,
            offset=offset,
            error_kind=kind,
            error_message=message[:4000],
            product_id=product_id,
        )

    def original(self) -> bytes:
        return base64.b64decode(self.original_base64)
