"""Image + text modifier search, offline: the SYNTHETIC designs and their changes, the SIMULATED
wording and its parser, the joint model on a problem with a known answer, and `eval modify`'s
whole run at a tiny size."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.modify_data import (
    TEMPLATES,
    Design,
    changed,
    modify_catalogue,
    options,
    random_design,
    words,
)
from bench.modify_eval import (
    METHODS,
    ModifyEvalSizes,
    parse,
    run_modify_eval,
    write_modify_report,
)
from processors.products import ProductProcessor
from training.modify_model import ModifyTrainConfig, train_modifier

DRESS = Design("dress", "blue", "white", "solid", "short", "crew", "knee")


def test_a_design_renders_its_facts_in_any_scene() -> None:
    a, b = DRESS.render(1), DRESS.render(2)
    assert "sleeve.short" in a.attributes and "length.knee" in a.attributes
    assert {k for k in a.attributes if not k.startswith("colour.")} == {
        k for k in b.attributes if not k.startswith("colour.")
    }
    assert a.box != b.box or not np.array_equal(a.image, b.image)  # another photo
    assert np.array_equal(DRESS.render(1).image, a.image)  # reproducible
    long = changed(DRESS, "sleeve", "long").render(1)
    assert "sleeve.long" in long.attributes and "sleeve.short" not in long.attributes
    red = changed(DRESS, "colour", "red").render(1)
    assert "colour.red" in red.attributes and "colour.blue" not in red.attributes


def test_changes_apply_only_where_they_mean_something() -> None:
    bag = Design("bag", "black", "red", "striped")
    assert options(bag, "sleeve") == [] and options(bag, "length") == []
    assert "striped" not in options(bag, "pattern")
    assert not {"black", "red"} & set(options(bag, "colour"))
    rng = np.random.default_rng(0)
    designs = [random_design(rng) for _ in range(200)]
    assert {d.kind for d in designs} >= {"top", "dress", "trousers", "skirt", "bag"}
    assert all(d.length is not None for d in designs if d.kind in ("dress", "skirt", "trousers"))


def test_held_out_wording_uses_neither_training_templates_nor_words() -> None:
    rng = np.random.default_rng(1)
    for _ in range(50):
        text = words(DRESS, "colour", "red", "test", rng)
        assert parse(text)[0] is None  # scarlet, ruby: words the system never learned
        assert not any(text == t.format(w="red") for t in TEMPLATES["train"])
    trained = {parse(words(DRESS, "colour", "red", "train", rng))[0] for _ in range(50)}
    assert "colour.red" in trained  # misspellings aside, training words parse


def test_the_parser_reads_values_and_refusals() -> None:
    assert parse("but with long sleeves") == ("sleeve.long", None)
    assert parse("in crimson") == ("colour.red", None)
    assert parse("without stripes") == ("pattern.solid", "pattern.striped")
    assert parse("nothing known") == (None, None)


def test_each_query_has_its_two_target_renderings_and_near_misses() -> None:
    catalogue = modify_catalogue(references=6, distractors=4, seed=3)
    relevance = catalogue.relevance(catalogue.queries)
    for q, row in zip(catalogue.queries, relevance, strict=True):
        relevant = [catalogue.ids[i] for i in np.flatnonzero(row)]
        suffix = f"-{q.change}-"
        assert sum(suffix in pid and q.reference[-5:] in pid for pid in relevant) == 2
        assert q.reference not in relevant
    assert {q.split for q in catalogue.queries} == {"train", "test"}


def test_the_joint_model_learns_a_composition_the_image_alone_cannot_find() -> None:
    """Gallery item 2i+c is image i under change c (c in 0, 1): the words choose which."""
    rng = np.random.default_rng(0)
    n = 60
    gallery = rng.normal(size=(2 * n, 16)).astype(np.float32)
    gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
    images = np.repeat(gallery[0::2] + gallery[1::2], 2, axis=0)
    images /= np.linalg.norm(images, axis=1, keepdims=True)
    texts = np.tile(np.eye(2, dtype=np.float32), (n, 1))
    positives = np.eye(2 * n, dtype=bool)
    model = train_modifier(
        images, texts, positives, gallery, ModifyTrainConfig(epochs=60, batch=32, hidden=64)
    )
    assert model.history[-1] < model.history[0]
    joint = (model.queries(images, texts) @ gallery.T).argmax(axis=1)
    image = (images @ gallery.T).argmax(axis=1)
    assert (joint == np.arange(2 * n)).mean() > 0.9
    assert (image == np.arange(2 * n)).mean() < 0.6  # a coin toss between the two changes
    with pytest.raises(ValueError):
        train_modifier(images, texts, np.zeros_like(positives), gallery, ModifyTrainConfig())


def test_eval_modify_reports_every_method_and_group(
    processor: ProductProcessor, tmp_path: Path
) -> None:
    report = run_modify_eval(processor, ModifyEvalSizes.small())
    test = report["held_out_wording"]
    assert set(METHODS) <= set(test)
    assert {"overall", "colour", "pattern"} <= set(test["joint"])
    for method in METHODS:
        for metrics in test[method].values():
            assert 0 <= metrics["R@10"] <= 1 and 0 <= metrics["NDCG@10"] <= 1
    assert report["training"]["triplets"] > 0 and len(report["training"]["loss_by_epoch"]) == 2
    assert report["done_when"]["goal_ratio"] == 1.18
    write_modify_report(report, tmp_path / "modify.json")
    assert json.loads((tmp_path / "modify.json").read_text())["data"].startswith("SIMULATED")
    assert (tmp_path / "modify.png").stat().st_size > 0
