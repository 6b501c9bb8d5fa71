"""The trained box regressor and attribute tagger, served through ONNX Runtime, on SYNTHETIC
scenes from a seed never used in training; and the fusion arithmetic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from processors.detector import RegionFinder
from processors.embedding import OnnxEmbedder
from processors.products import describe_images
from processors.roi import Box, foreground_region
from processors.tagger import OnnxTagger, fuse, knn_vote
from schemas.attributes import CATEGORY_KEYS
from training.synthetic_garments import garments

HELD_OUT_SEED = 4242


@pytest.fixture(scope="module")
def scenes() -> list:  # type: ignore[type-arg]
    return list(garments(150, HELD_OUT_SEED))


def test_learned_box_beats_the_foreground_rule(scenes: list, finder: RegionFinder) -> None:  # type: ignore[type-arg]
    learned = finder.find([g.image for g in scenes])
    truth = [Box(*g.box) for g in scenes]
    iou_learned = np.mean([r.box.iou(t) for r, t in zip(learned, truth, strict=True)])
    iou_rule = np.mean(
        [foreground_region(g.image).box.iou(t) for g, t in zip(scenes, truth, strict=True)]
    )
    assert iou_learned > iou_rule + 0.1, (iou_learned, iou_rule)
    assert iou_learned > 0.7


def test_tagger_predicts_held_out_attributes(
    scenes: list,  # type: ignore[type-arg]
    embedder: OnnxEmbedder,
    finder: RegionFinder,
    tagger: OnnxTagger,
) -> None:
    described = describe_images([g.image for g in scenes], embedder, finder)
    predictions = tagger.predict(described.vectors, described.colour_matrix)
    hits = {"category": 0, "colour": 0, "pattern": 0}
    for g, p in zip(scenes, predictions, strict=True):
        category, _, tags = tagger.tags(p, None)
        keys = {t.key for t in tags}
        hits["category"] += category in g.attributes
        truth_colours = {k for k in g.attributes if k.startswith("colour.")}
        hits["colour"] += bool(truth_colours & keys)
        truth_pattern = next(k for k in g.attributes if k.startswith("pattern."))
        hits["pattern"] += truth_pattern in keys
    rates = {k: v / len(scenes) for k, v in hits.items()}
    assert rates["category"] > 0.8 and rates["colour"] > 0.8 and rates["pattern"] > 0.8, rates


def test_tags_carry_the_department_and_catalogue_attributes(tagger: OnnxTagger) -> None:
    probs = np.full(len(CATEGORY_KEYS), 0.01, dtype=np.float32)
    probs[CATEGORY_KEYS.index("category.dress")] = 0.9
    attrs = np.zeros(len(tagger.card.attribute_keys), dtype=np.float32)
    attrs[tagger.card.attribute_keys.index("colour.red")] = 0.99
    from processors.tagger import Prediction

    category, confidence, tags = tagger.tags(Prediction(probs, attrs), None, ["material.silk"])
    by_key = {t.key: t for t in tags}
    assert category == "category.dress" and confidence == pytest.approx(0.9, abs=1e-6)
    assert by_key["department.dresses"].source == "derived"
    assert by_key["colour.red"].confidence == pytest.approx(0.99, abs=1e-6)
    assert by_key["material.silk"].source == "catalogue" and by_key["material.silk"].confidence == 1
    # a colour the region's pixels do not show is vetoed; gated groups are dropped
    attrs[tagger.card.attribute_keys.index("sleeve.long")] = 0.99
    _, _, measured = tagger.tags(Prediction(probs, attrs), None, (), {"grey": 0.9, "red": 0.01})
    assert "colour.red" not in {t.key for t in measured}
    assert "sleeve.long" in {t.key for t in measured}  # dresses have sleeves
    probs[CATEGORY_KEYS.index("category.dress")] = 0.0
    probs[CATEGORY_KEYS.index("category.sneaker")] = 0.9
    _, _, shoe = tagger.tags(Prediction(probs, attrs), None, (), {"red": 0.5})
    assert "sleeve.long" not in {t.key for t in shoe} and "colour.red" in {t.key for t in shoe}


def test_neighbour_vote_and_fusion() -> None:
    keys = list(CATEGORY_KEYS)
    vote = knn_vote([("dress", 0.9), ("Dress", 0.8), ("coat", 0.7), ("unknown", 0.99)], keys)
    assert vote is not None
    assert vote[keys.index("category.dress")] == pytest.approx(1.7 / 2.4)
    assert knn_vote([("not-a-category", 0.9)], keys) is None
    model = np.full(len(keys), 0.02)
    model[keys.index("category.coat")] = 0.55
    model[keys.index("category.dress")] = 0.27
    model /= model.sum()
    assert np.argmax(fuse(model, None, 0.5)) == keys.index("category.coat")
    fused = fuse(model, vote, 0.5)  # the neighbours tip a close call
    assert fused.sum() == pytest.approx(1.0) and np.argmax(fused) == keys.index("category.dress")
    assert np.argmax(fuse(model, vote, 1.0)) == keys.index("category.coat")


def test_training_runs_end_to_end_on_a_small_set(tmp_path: Path, embedder: OnnxEmbedder) -> None:
    from training.attributes import Sizes, train_attributes

    sizes = Sizes(
        fashion_mnist=150, synthetic=150, detector_scenes=100, detector_fashion_mnist=20,
        detector_epochs=2, tagger_epochs=3,
    )  # fmt: skip
    detector, tagger_file = train_attributes(tmp_path, embedder, sizes, log=lambda _: None)
    small = OnnxTagger(tagger_file)
    assert small.card.fusion_k in (5, 10, 20) and 0.0 <= small.card.fusion_alpha <= 1.0
    assert len(small.card.thresholds) == len(small.card.attribute_keys)
    assert small.card.embedding_model == embedder.model_version
    assert small.card.detector_model == RegionFinder(detector).model_version
    scenes = list(garments(4, 1))
    described = describe_images([g.image for g in scenes], embedder, RegionFinder(detector))
    predictions = small.predict(described.vectors, described.colour_matrix)
    assert len(predictions) == 4
    assert predictions[0].category_probs.sum() == pytest.approx(1.0, abs=1e-4)
