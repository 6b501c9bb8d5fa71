"""Attribute-aware ranking and attribute filters."""

from __future__ import annotations

import pytest

from processors.ranking import Weights, attribute_similarity, rerank
from stores.base import Hit, IndexRow
from stores.filters import Filters
from stores.milvus import expression


def test_attribute_overlap_is_weighted_by_group_and_confidence() -> None:
    query = {"category.dress": 0.9, "colour.red": 0.8, "pattern.striped": 0.6}
    assert attribute_similarity(query, query) == pytest.approx(1.0)
    assert attribute_similarity(query, {}) == 0.0
    # the category weighs twice a colour: sharing it beats sharing the colour
    same_category = attribute_similarity(query, {"category.dress": 0.9})
    same_colour = attribute_similarity(query, {"colour.red": 0.8})
    assert same_category == pytest.approx(2 * 0.9 / (2 * 0.9 + 0.8 + 0.6))
    assert same_category > same_colour
    # a less sure candidate counts for less
    assert attribute_similarity(query, {"category.dress": 0.45}) == pytest.approx(same_category / 2)
    assert attribute_similarity({}, query) == 0.0


def test_rerank_fuses_visual_colour_and_attributes() -> None:
    candidates = [
        Hit(IndexRow("looks-alike", attribute_scores={"category.coat": 0.9}), 0.80),
        Hit(
            IndexRow("same-kind", attribute_scores={"category.dress": 0.9, "colour.red": 0.9}), 0.78
        ),
    ]
    query = {"category.dress": 0.9, "colour.red": 0.9}
    visual_only = rerank(candidates, {}, Weights(1.0, 0.0, 0.0), query)
    assert [r.product_id for r in visual_only] == ["looks-alike", "same-kind"]
    fused = rerank(candidates, {}, Weights(0.8, 0.1, 0.1), query)
    assert [r.product_id for r in fused] == ["same-kind", "looks-alike"]
    top = fused[0]
    assert top.attributes == pytest.approx(1.0)
    assert top.score == pytest.approx(0.8 * top.visual + 0.1 * top.colour + 0.1 * top.attributes)


def test_attribute_filters_are_any_of_within_a_group_and_all_groups() -> None:
    expr = expression(
        Filters(
            category="dress",
            attributes=("colour.red", "pattern.striped", "colour.blue", "colour.red"),
        )
    )
    assert expr == (
        'category == "dress" and '
        'array_contains_any(attributes, ["colour.red", "colour.blue"]) and '
        'array_contains_any(attributes, ["pattern.striped"])'
    )
    assert expression(Filters()) == expression(None) == ""
