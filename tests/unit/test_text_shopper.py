"""SIMULATED text shoppers (bench/wording.py, bench/text_shopper.py): held-out wording really is
held out, every intent can be satisfied, and the catalogue names what is synthetic."""

from __future__ import annotations

import numpy as np

from bench.text_shopper import Intent, intents, text_catalogue, text_relevance
from bench.wording import TEMPLATES, WORDING, express, misspell
from processors.text import words
from schemas.attributes import BY_KEY


def test_held_out_synonyms_and_templates_never_appear_in_training_wording() -> None:
    for key, w in WORDING.items():
        assert key in BY_KEY
        seen = {w.canonical, *w.train}
        assert not seen & set(w.test), key
    assert not set(TEMPLATES["train"]) & set(TEMPLATES["test"])
    train_phrases = {p for w in WORDING.values() for p in (w.canonical, *w.train)}
    test_phrases = {p for w in WORDING.values() for p in w.test}
    assert not train_phrases & test_phrases


def test_expressions_follow_their_split_and_are_reproducible() -> None:
    intent = ("category.dress", "colour.red", "pattern.striped")
    a = [express(intent, "test", np.random.default_rng(5), typo_rate=0) for _ in range(3)]
    assert a[0] == a[1] == a[2]
    rng = np.random.default_rng(1)
    for _ in range(50):
        text = express(intent, "test", rng, typo_rate=0)
        assert any(s in text for s in WORDING["category.dress"].test)
        assert any(s in text for s in WORDING["colour.red"].test)
        assert "dress " not in f"{text} " and "red" not in words(text)
    trained = {express(intent, "train", rng, typo_rate=0) for _ in range(50)}
    assert any("dress" in t for t in trained) and any(
        "frock" in t or "sundress" in t for t in trained
    )


def test_misspellings_change_one_letter_of_longer_words() -> None:
    rng = np.random.default_rng(0)
    typos = {misspell("striped", rng) for _ in range(30)}
    assert "striped" not in typos and len(typos) > 5  # one letter dropped, doubled or swapped
    for typo in typos:
        assert abs(len(typo) - 7) <= 1 and typo[0] == "s" and set(typo) <= set("striped")
    assert misspell("red", rng) == "red"


def test_catalogue_names_its_products_and_every_intent_has_a_relevant_one() -> None:
    cat = text_catalogue(garments=30, photos=10, seed=2)
    assert len(cat.events) == 40 == len(cat.truth)
    assert {e.product_id.split("-")[0] for e in cat.events} == {"synthetic", "fmnist"}
    assert all("title" in e.synthetic_fields for e in cat.events)
    garments = [e for e in cat.events if e.product_id.startswith("synthetic-garment")]
    assert any(len(cat.truth[e.product_id]) >= 4 for e in garments)  # colours, pattern, ...
    for e in cat.events:
        assert f"category.{e.category}" in cat.truth[e.product_id]
    for intent in intents(cat.truth, 40, seed=3):
        assert 1 <= len(intent.keys) <= 4 and intent.keys[0].startswith("category.")
        assert sum(k.startswith("colour.") for k in intent.keys) <= 1
        assert any(text_relevance(intent, keys) == 1.0 for keys in cat.truth.values())


def test_relevance_needs_the_category_then_counts_the_facts() -> None:
    intent = Intent(("category.dress", "colour.red", "pattern.striped"))
    assert intent.category == "dress"
    dress = frozenset({"category.dress", "colour.red"})
    assert text_relevance(intent, dress) == 0.75
    assert text_relevance(intent, dress | {"pattern.striped"}) == 1.0
    assert text_relevance(intent, frozenset({"colour.red", "pattern.striped"})) == 0.0
    assert text_relevance(Intent(("category.dress",)), dress) == 1.0
