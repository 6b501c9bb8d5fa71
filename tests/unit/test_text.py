"""Words of products and of text queries (processors/text.py): every query bounded and
reduced to plain words before a store sees it."""

from __future__ import annotations

import pytest

from processors.text import (
    MAX_TERMS,
    MAX_WORDS,
    TextQueryError,
    lexemes,
    parse_terms,
    product_text,
    stem,
    words,
)


def test_words_are_folded_lower_case_ascii_and_bounded() -> None:
    assert words("Crêpe  DRESS, t-shirt/top!") == ("crepe", "dress", "t", "shirt", "top")
    assert words("a & b | !c:* <-> 'x'") == ("a", "b", "c", "x")
    assert len(words("w " * 1000)) == MAX_WORDS
    assert len(words("w " * 1000, None)) == 1000


def test_a_string_is_one_term_and_a_mapping_weighs_terms() -> None:
    (only,) = parse_terms("  Black boots ")
    assert (only.text, only.weight, only.words, only.excludes) == (
        "Black boots",
        1.0,
        ("black", "boots"),
        False,
    )
    terms = parse_terms({"black boots": 1, "heel": -0.5, "stiletto": -1})
    assert [(t.text, t.weight, t.excludes) for t in terms] == [
        ("black boots", 1.0, False),
        ("heel", -0.5, False),
        ("stiletto", -1.0, True),
    ]
    assert [t.text for t in parse_terms({"red": 1, "!!!": 2})] == ["red"]  # no word: dropped
    dashed = parse_terms("black  t-shirt -heel -high-heel")
    assert [(t.text, t.weight) for t in dashed] == [
        ("black t-shirt", 1.0),
        ("heel", -1.0),
        ("high-heel", -1.0),
    ]


@pytest.mark.parametrize(
    "query",
    [
        "",
        "?!",
        {},
        {"heel": -1},
        {"red": 0},
        {"red": float("nan")},
        {"red": 11},
        {"x" * 300: 1},
        {f"w{i}": 1 for i in range(MAX_TERMS + 1)},
        {"red": 1, " red ": -1},
        "-heel",
        "x" * 300,
    ],
)
def test_queries_with_nothing_to_search_or_out_of_bounds_are_refused(query: object) -> None:
    with pytest.raises(TextQueryError):
        parse_terms(query)  # type: ignore[arg-type]


def test_product_text_names_what_the_pipeline_knows() -> None:
    text = product_text(
        "Summer dress", "Acme", "ankle-boot", "red", ["pattern.striped", "sleeve.short", "nope.x"]
    )
    assert text == "summer dress acme ankle boot red striped short sleeves"
    assert product_text("Crêpe T", None, "bag", "", []) == "crepe t bag"


def test_the_twins_stemmer_takes_plural_endings_as_snowball_does() -> None:
    pairs = {"dresses": "dress", "boots": "boot", "ponies": "poni", "ties": "tie", "gas": "gas"}
    assert {w: stem(w) for w in pairs} == pairs
    assert stem("dress") == "dress" and stem("status") == "status"
    assert lexemes("The red dresses with sleeves") == ("red", "dress", "sleeve")
