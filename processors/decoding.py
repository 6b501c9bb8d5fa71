"""Kafka record bytes to a versioned event, or a ProcessingError carrying its dead-letter kind:
one decoder for every topic (products, impressions, interactions)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import ValidationError

from processors.errors import ProcessingError
from schemas.dead_letter import ErrorKind
from schemas.events import UnknownSchemaVersion
from schemas.validation import describe

E = TypeVar("E")


def decode_json_event(value: bytes, parse: Callable[[dict[str, Any]], E]) -> E:
    try:
        payload = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProcessingError(f"value is not JSON: {exc}", ErrorKind.NOT_JSON) from exc
    if not isinstance(payload, dict):
        raise ProcessingError(
            f"event must be a JSON object, got {type(payload).__name__}",
            ErrorKind.SCHEMA_VIOLATION,
        )
    try:
        return parse(payload)
    except UnknownSchemaVersion as exc:
        raise ProcessingError(str(exc), ErrorKind.UNKNOWN_SCHEMA_VERSION) from exc
    except ValidationError as exc:
        details = describe(exc.errors())
        raise ProcessingError(f"schema violation: {details}", ErrorKind.SCHEMA_VIOLATION) from exc
