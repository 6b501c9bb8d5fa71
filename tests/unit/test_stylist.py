"""The SIMULATED stylist (bench/stylist.py): its hidden rules on cases with a known answer,
outfits of one item per role, the noise it adds, splits whose test items never appear in
training, and fill-in-the-blank questions with one right answer among four."""

from __future__ import annotations

import json
from pathlib import Path
from typing import cast

import pytest

from bench.catalog import outfit_catalogue, write_jsonl
from bench.modify_data import Design
from bench.stylist import (
    PHOTO_ROLES,
    Piece,
    fitb_questions,
    generate_outfits,
    hidden_score,
    photo_piece,
    piece_of,
    split_outfits,
    stylist_catalogue,
)
from schemas.outfits import parse_outfit_event
from streams.producer import InvalidEvent, OutfitProducer
from training.datasets import CLASSES


def _piece(pid: str, kind: str, colour: str, pattern: str = "solid", **facts: str) -> Piece:
    return piece_of(pid, Design(kind, colour, "white", pattern, **facts))


def test_the_hidden_rules_on_known_cases() -> None:
    navy_top = _piece("a", "top", "navy", sleeve="long", neckline="crew")
    beige_trousers = _piece("b", "trousers", "beige", length="full-length")
    black_shoes = _piece("c", "shoes", "black")
    assert hidden_score([navy_top, beige_trousers, black_shoes]) > 0  # neutrals, one season
    clash = [
        _piece("d", "top", "red", sleeve="short", neckline="crew"),
        _piece("e", "skirt", "yellow", length="knee"),
        _piece("f", "shoes", "blue"),
    ]
    assert hidden_score(clash) < 0  # three brights
    busy = [
        _piece("g", "top", "white", "checked", sleeve="short", neckline="crew"),
        _piece("h", "skirt", "black", "dotted", length="knee"),
        black_shoes,
    ]
    assert hidden_score(busy) < hidden_score([busy[0], beige_trousers, black_shoes])
    seasons = [
        _piece("i", "top", "navy", sleeve="sleeveless", neckline="crew"),
        _piece("j", "trousers", "black", length="shorts"),
        _piece("k", "outerwear", "brown"),
        photo_piece("l", "ankle-boot"),
    ]
    assert hidden_score(seasons) < 0  # shorts and a sleeveless top under a winter coat


def test_outfits_hold_one_item_per_role_and_the_asked_noise() -> None:
    photos = [(f"p{i}", c) for i, c in enumerate(list(PHOTO_ROLES) * 8)]
    catalogue = stylist_catalogue(420, photos, seed=1)
    outfits = generate_outfits(catalogue, 400, seed=1, noise=0.1)
    assert len(outfits) == 400
    assert sum(o.truth for o in outfits) == 200  # balanced by the hidden verdict
    for o in outfits:
        roles = [p.role for p in o.pieces]
        assert len(set(roles)) == len(roles) and "shoes" in roles
        assert not ("dress" in roles and ({"top", "bottom"} & set(roles)))
        assert (hidden_score(o.pieces) > 0) == o.truth and 0.5 <= o.confidence < 1
    flipped = sum(o.compatible != o.truth for o in outfits) / len(outfits)
    assert 0.05 < flipped < 0.16
    assert any(p.design is None for o in outfits for p in o.pieces)  # photos take part
    assert {p.role for o in outfits for p in o.pieces} >= {"shoes", "bag", "outer", "dress"}


def test_test_items_never_appear_in_training_outfits() -> None:
    catalogue = stylist_catalogue(560, seed=2)
    splits = split_outfits(catalogue, 300, 100, labelled_share=0.1, seed=2)
    assert (len(splits.labelled), len(splits.unlabelled)) == (30, 270)
    assert not splits.train_items & splits.test_items
    train_ids = {p for o in splits.labelled + splits.unlabelled for p in o.product_ids}
    assert train_ids <= splits.train_items
    assert {p for o in splits.test for p in o.product_ids} <= splits.test_items
    assert all(o.compatible == o.truth for o in splits.test)  # the test labels carry no noise


def test_fill_in_the_blank_has_one_right_answer_among_four() -> None:
    catalogue = stylist_catalogue(1400, seed=3)
    splits = split_outfits(catalogue, 50, 120, labelled_share=1.0, seed=3)
    blanks = fitb_questions(catalogue, splits.test, seed=3)
    assert len(blanks) > 40  # of 60 compatible test outfits
    roles = {p.product_id: p.role for p in catalogue.pieces}
    for b in blanks:
        assert len(set(b.candidates)) == 4 and b.answer in b.candidates
        assert b.outfit.truth and b.outfit.pieces[b.hidden].product_id == b.answer
        assert {roles[c] for c in b.candidates} == {roles[b.answer]}
        rest = [p for i, p in enumerate(b.outfit.pieces) if i != b.hidden]
        pieces = {p.product_id: p for p in catalogue.pieces}
        for c in b.candidates:
            assert (hidden_score([*rest, pieces[c]]) > 0) == (c == b.answer)
    positions = {b.candidates.index(b.answer) for b in blanks}
    assert len(positions) > 1  # the answer is not always first
    for b in blanks:  # nothing but the outfit tells the answer apart: same look
        looks = {(pieces[c].design is None, pieces[c].pattern == "solid") for c in b.candidates}
        assert len(looks) == 1


@pytest.mark.parametrize("category", CLASSES)
def test_every_fashion_mnist_class_has_a_role(category: str) -> None:
    assert photo_piece("x", category).role in {"top", "bottom", "dress", "outer", "shoes", "bag"}


def test_the_stylist_catalogue_is_products_and_outfits_over_them(tmp_path: Path) -> None:
    cat = outfit_catalogue(tmp_path, garments=28, photos=12, outfits=12, seed=4)
    ids = {p.product_id for p in cat.products}
    assert len(cat.products) == 40
    garments = [p for p in cat.products if p.product_id.startswith("synthetic-garment-")]
    assert {p.category for p in garments} >= {"shoes", "bag", "dress", "coat"}
    assert all("image" in p.synthetic_fields and p.image.path for p in garments)
    assert all(Path(p.image.path).exists() for p in garments)  # type: ignore[arg-type]
    assert 8 <= len(cat.outfits) <= 12  # as many as the hidden rules find in 28 garments
    for o in cat.outfits:
        assert o.source == "simulated" and o.title == "SIMULATED outfit"
        assert {i.product_id for i in o.items} <= ids
    path = tmp_path / "outfits.jsonl"
    write_jsonl(cat.outfits, path)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [parse_outfit_event(x) for x in lines] == cat.outfits
    with pytest.raises(InvalidEvent, match="one item per role"):
        OutfitProducer._validate(
            cast(OutfitProducer, None),
            {**lines[0], "items": [{"product_id": "a", "role": "top"},
                                   {"product_id": "b", "role": "top"}]},
        )  # fmt: skip
