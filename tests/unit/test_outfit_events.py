"""Outfit events (schemas/outfits.py): one item per role, a product once, a dress beside
neither top nor bottom, versions and sources checked, unknown schema versions refused."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from schemas.events import UnknownSchemaVersion
from schemas.outfits import (
    OutfitDelete,
    OutfitUpsert,
    encode_outfit_event,
    outfit_event_json_schema,
    parse_outfit_event,
)


def event(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "schema_version": 1,
        "type": "outfit.upsert",
        "outfit_id": "o-1",
        "version": 3,
        "source": "editorial",
        "items": [{"product_id": "p1", "role": "top"}, {"product_id": "p2", "role": "bottom"}],
    }
    base.update(changes)
    return base


def test_a_valid_outfit_round_trips() -> None:
    parsed = parse_outfit_event(event(label="incompatible", label_confidence=0.6))
    assert isinstance(parsed, OutfitUpsert) and parsed.label == "incompatible"
    again = parse_outfit_event(json.loads(encode_outfit_event(parsed)))
    assert again == parsed
    gone = parse_outfit_event({"type": "outfit.delete", "outfit_id": "o-1", "version": 4,
                               "schema_version": 1})  # fmt: skip
    assert isinstance(gone, OutfitDelete)
    assert "outfit.upsert" in json.dumps(outfit_event_json_schema())


@pytest.mark.parametrize(
    "changes",
    [
        {"items": [{"product_id": "p1", "role": "top"}]},  # one item is no outfit
        {"items": [{"product_id": "p1", "role": "top"}, {"product_id": "p2", "role": "top"}]},
        {"items": [{"product_id": "p1", "role": "top"}, {"product_id": "p1", "role": "bag"}]},
        {"items": [{"product_id": "p1", "role": "dress"}, {"product_id": "p2", "role": "top"}]},
        {"items": [{"product_id": "p1", "role": "hat"}, {"product_id": "p2", "role": "top"}]},
        {"items": [{"product_id": "../x", "role": "top"}, {"product_id": "p2", "role": "bag"}]},
        {"source": "real"},
        {"label": "maybe"},
        {"label_confidence": 1.5},
        {"version": -1},
        {"version": 2**63},
        {"outfit_id": ""},
        {"title": "a\x00b"},
        {"surprise": 1},
    ],
)
def test_bad_outfits_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        parse_outfit_event(event(**changes))


def test_unknown_schema_versions_are_refused() -> None:
    with pytest.raises(UnknownSchemaVersion):
        parse_outfit_event(event(schema_version=2))
