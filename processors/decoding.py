"""Kafka record bytes to a versioned event, or a ProcessingError carrying its dead-letter kind:
one decoder for every topic (products, impressions, interactions)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
from pydantic import ValidationError

from processors.errors import ProcessingError
from schemas.dead_letter import ErrorKind
from schemas.events import UnknownSchemaVersion
from schemas.validation import describe

E = TypeVar("E")
# An event's JSON: at most this many bytes (an image inline as base64 fits: 10 MiB -> 13.4 MB)
# and this many levels of nesting (ours have 3; Python's parser recurses per level).
MAX_EVENT_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 32
# A string, its closing quote optional so a match never fails and is never retried (an
# unterminated string of escaped quotes made the required-quote form quadratic).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_OPEN = frozenset(b"[{")


def too_deep(value: bytes, limit: int = MAX_DEPTH) -> int | None:
    """How deep the JSON's arrays and objects nest when that is over ``limit`` (None when
    within it), found without parsing (strings skipped, vectorised: ~0.1 s for 15 MB)."""
    if sum(value.count(b) for b in (b"[", b"{")) <= limit:
        return None  # too few brackets to nest deeper: nothing to count
    bare = np.frombuffer(_STRING.sub(b'""', value), dtype=np.uint8)
    steps = np.isin(bare, list(_OPEN)).astype(np.int8) - np.isin(bare, list(b"]}"))
    depth = int(np.cumsum(steps, dtype=np.int32).max(initial=0))
    return depth if depth > limit else None


def decode_json_event(value: bytes, parse: Callable[[dict[str, Any]], E]) -> E:
    if len(value) > MAX_EVENT_BYTES:
        raise ProcessingError(
            f"event is {len(value)} bytes, over the {MAX_EVENT_BYTES} limit", ErrorKind.NOT_JSON
        )
    if (depth := too_deep(value)) is not None:
        raise ProcessingError(
            f"event nests {depth} levels deep, over the {MAX_DEPTH} limit", ErrorKind.NOT_JSON
        )
    try:
        # strictly UTF-8: json.loads(bytes) would also take UTF-16/32, which the depth count
        # above does not read
        payload = json.loads(value.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # bad UTF-8, bad JSON, a 5000-digit number
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
