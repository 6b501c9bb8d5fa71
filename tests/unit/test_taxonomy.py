"""The attribute taxonomy and the event field that carries catalogue attributes."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from schemas.attributes import (
    BY_KEY,
    CATEGORY_KEYS,
    GROUP_BY_KEY,
    TAXONOMY,
    Source,
    category_key,
    department_of,
)
from schemas.events import ProductUpsert
from training.datasets import CLASSES


def test_at_least_90_attributes_with_unique_namespaced_keys() -> None:
    assert len(TAXONOMY) >= 90
    assert len(BY_KEY) == len(TAXONOMY)
    for a in TAXONOMY:
        assert a.key == f"{a.group}.{a.value}"
        assert a.group in GROUP_BY_KEY and a.name and a.description
    assert len({a.group for a in TAXONOMY}) >= 12


def test_categories_cover_fashion_mnist_and_each_has_a_department() -> None:
    assert {f"category.{c}" for c in CLASSES} <= set(CATEGORY_KEYS)
    for key in CATEGORY_KEYS:
        department = department_of(key)
        assert department is not None and BY_KEY[department].source is Source.DERIVED


def test_category_labels_normalise_to_keys() -> None:
    assert category_key("Dress") == "category.dress"
    assert category_key("category.ankle-boot") == "category.ankle-boot"
    assert category_key("synthetic-dress") is None


def _event(**changes: object) -> ProductUpsert:
    fields: dict[str, object] = {
        "product_id": "p1",
        "version": 1,
        "title": "t",
        "category": "dress",
        "price": 1,
        "currency": "EUR",
        "image": {"path": "/x.png"},
    }
    fields.update(changes)
    return ProductUpsert.model_validate(fields)


def test_events_carry_known_attributes_once() -> None:
    event = _event(attributes=["material.denim", "season.summer", "material.denim"])
    assert event.attributes == ["material.denim", "season.summer"]
    assert _event().attributes == []


def test_events_with_unknown_attributes_are_refused() -> None:
    with pytest.raises(ValidationError, match="unknown attribute keys"):
        _event(attributes=["material.denim", "material.unobtainium"])
