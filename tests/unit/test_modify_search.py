"""Modifier search as served: the joined features, the joint model's ONNX graph against torch,
the registry's serving model looked up and kept, and the search's ranking on the in-memory
twins (the reference never returned, filters held, other base models' products skipped)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

import numpy as np
import onnx
import pytest
import torch

from processors.modify import (
    PROFILE_WIDTH,
    ModifierError,
    ModifierLayoutError,
    ModifyEncoder,
    check_modifier,
    embedding_part,
    joined_batch,
    joined_features,
)
from processors.products import ProductProcessor
from processors.tokens import WordPiece
from search.modify import (
    FixedModifier,
    ModifyQuery,
    ModifySearch,
    ModifyUnavailable,
    RegisteredModifier,
)
from search.service import UnknownProduct
from stores.base import FixedTarget
from stores.filters import Filters
from stores.memory import MemoryRepository, MemoryVectorIndex
from stores.rows import encode_base, stored_index_row
from training.minilm import MiniLM, vocabulary
from training.modify_export import export_modifier
from training.modify_model import JointModifier, SentenceEncoder


def test_joined_features_are_a_unit_vector_of_embedding_and_weighted_profile() -> None:
    base = np.array([3.0, 4.0, 0.0, 0.0], np.float32)
    red = joined_features({"colour.red": 0.9}, {"red": 1.0}, base)
    assert np.linalg.norm(red) == pytest.approx(1.0, abs=1e-5)
    assert red[:4] * np.sqrt(1 + 1.5**2) == pytest.approx([0.6, 0.8, 0, 0], abs=1e-5)
    blue = joined_features({"colour.blue": 0.9}, {"blue": 1.0}, base)
    # one shape, orthogonal profiles: only the embedding's share is left
    assert float(red @ blue) == pytest.approx(1 / (1 + 1.5**2), abs=1e-5)
    heavier = joined_features({"colour.blue": 0.9}, {"blue": 1.0}, base, profile_weight=3.0)
    assert float(red @ heavier) < float(red @ blue)
    assert joined_batch([]).shape == (0, 0)
    parts = embedding_part(np.stack([red, blue]), 4)
    assert np.linalg.norm(parts, axis=1) == pytest.approx([1.0, 1.0], abs=1e-5)


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("  in \t red\n", "in red"),
        ("", None),
        ("   ", None),
        ("x" * 201, None),
        ("in\x00red", None),
        ("in\x7fred", None),
        ("in\x85red", None),
    ],
)
def test_modifier_words_are_checked(text: str, ok: str | None) -> None:
    if ok is None:
        with pytest.raises(ModifierError):
            check_modifier(text)
    else:
        assert check_modifier(text) == ok


WIDTH = 4 + PROFILE_WIDTH  # a 4-d base embedding and the profile


def _tiny_encoder() -> SentenceEncoder:
    encoder = SentenceEncoder.__new__(SentenceEncoder)
    torch.manual_seed(0)
    encoder.model = MiniLM(vocab=30522, hidden=48, layers=1).eval()
    encoder.pieces = WordPiece(vocabulary(), 16)
    return encoder


@pytest.fixture(scope="module")
def artifact() -> bytes:
    encoder = _tiny_encoder()
    refs = np.random.default_rng(0).normal(size=(3, WIDTH)).astype(np.float32)
    joint = JointModifier(image_dim=WIDTH, text_dim=48, hidden=16)
    with torch.no_grad():  # away from the identity, so the words matter
        joint.residual.weight.normal_(0, 0.5)
    meta = {"base_dim": "4", "profile_weight": "1.5", "base_model_version": "m"}
    return export_modifier(joint, encoder, ["in red", "with long sleeves", "no stripes"], refs,
                           meta)  # fmt: skip


def test_the_exported_graph_reads_words_and_carries_its_space(artifact: bytes) -> None:
    served = ModifyEncoder(artifact, "modify-test")
    assert (served.base_dim, served.profile_weight, served.base_model_version) == (4, 1.5, "m")
    refs = np.random.default_rng(1).normal(size=(2, WIDTH)).astype(np.float32)
    refs /= np.linalg.norm(refs, axis=1, keepdims=True)
    out = served.queries(["in red", "in blue"], refs)
    assert out.shape == (2, WIDTH)
    assert np.linalg.norm(out, axis=1) == pytest.approx([1.0, 1.0], abs=1e-5)
    again = served.queries(["in blue"], refs[:1])
    assert not np.allclose(out[0], again[0], atol=1e-4)  # other words, another query
    assert served.queries([], refs).shape == (0, WIDTH)


def _relabelled(artifact: bytes, layout: str) -> bytes:
    graph = onnx.load_from_string(artifact)
    for prop in graph.metadata_props:
        if prop.key == "layout":
            prop.value = layout
    data: bytes = graph.SerializeToString()
    return data


def test_a_model_of_another_feature_layout_is_refused(artifact: bytes) -> None:
    with pytest.raises(ModifierLayoutError, match="another feature layout"):
        ModifyEncoder(_relabelled(artifact, "0123456789abcdef"), "modify-old")


def test_the_registered_model_is_looked_up_loaded_and_kept(artifact: bytes) -> None:
    serving: list[str | None] = ["modify-a"]
    loads: list[str] = []
    failing = {"now": False}
    now = [0.0]

    def version() -> str | None:
        if failing["now"]:
            raise ConnectionError("registry down")
        return serving[0]

    def load(v: str) -> bytes | None:
        loads.append(v)
        return {"modify-a": artifact, "modify-b": artifact}.get(v)

    source = RegisteredModifier(version, load, refresh_s=10.0, clock=lambda: now[0])
    first = source.current()
    assert first is not None and first.model_version == "modify-a"
    serving[0] = "modify-b"
    assert source.current() is first  # looked up again only after refresh_s
    now[0] = 10.0
    assert source.current().model_version == "modify-b"  # type: ignore[union-attr]
    now[0] = 20.0
    assert source.current().model_version == "modify-b" and loads == ["modify-a", "modify-b"]  # type: ignore[union-attr]
    failing["now"] = True
    now[0] = 30.0
    assert source.current().model_version == "modify-b"  # type: ignore[union-attr]
    failing["now"] = False
    serving[0] = "modify-gone"  # registered, then its row vanished: the last one answers
    now[0] = 40.0
    assert source.current().model_version == "modify-b"  # type: ignore[union-attr]
    serving[0] = None
    now[0] = 50.0
    assert source.current() is None
    failing["now"] = True  # nothing loaded: unavailable, not the store's error
    with pytest.raises(ModifyUnavailable, match="registry could not be read"):
        RegisteredModifier(version, load, refresh_s=0.0).current()
    failing["now"] = False
    serving[0] = "modify-a"
    relabelled = _relabelled(artifact, "0123456789abcdef")
    with pytest.raises(ModifyUnavailable, match="another feature layout"):
        RegisteredModifier(version, lambda v: relabelled, refresh_s=0.0).current()


PRODUCTS = {  # id -> (embedding, colour, category, base model)
    "ref": ([1.0, 0.0, 0.0, 0.0], "red", "dress", "m"),
    "red-dress": ([0.95, 0.3, 0.0, 0.0], "red", "dress", "m"),
    "blue-dress": ([0.9, 0.45, 0.0, 0.0], "blue", "dress", "m"),
    "blue-boot": ([0.0, 0.0, 1.0, 0.0], "blue", "boot", "m"),
    "blue-old": ([1.0, 0.0, 0.0, 0.0], "blue", "dress", "old"),
}


def _row(pid: str, embedding: Sequence[float], colour: str, category: str, model: str) -> Any:
    now = datetime.now(UTC)
    return {
        "product_id": pid, "version": 1, "title": pid, "search_text": pid,
        "category": category, "price": 10, "currency": "EUR", "image_ref": "x",
        "synthetic_fields": ["title"], "roi_box": [0, 0, 1, 1], "image_width": 1,
        "image_height": 1, "primary_colour": colour, "colour_fractions": {colour: 1.0},
        "colour_vector": [0.0], "model_version": model, "event_time": now, "indexed_at": now,
        "predicted_category": category, "base_embedding": encode_base(np.array(embedding)),
        "attributes": [{"attribute_key": f"colour.{colour}", "confidence": 0.9,
                        "source": "model", "model_version": "t"}],
    }  # fmt: skip


class ColourWords:
    """A twin of the joint model: "in <colour>" keeps the reference's shape, swaps its
    profile for that colour's."""

    model_version = "modify-twin"
    base_dim = 4
    base_model_version = "m"

    def __init__(self, profile_weight: float = 1.5) -> None:
        self.profile_weight = profile_weight
        self.references: list[np.ndarray] = []

    def queries(self, texts: Sequence[str], references: np.ndarray) -> np.ndarray:
        self.references.append(references[0])
        colour = texts[0].split()[-1]
        shape = references[0, :4]
        profile = {f"colour.{colour}": 0.9}, {colour: 1.0}
        return joined_features(*profile, shape, self.profile_weight)[None, :]


@pytest.fixture
def modify(processor: ProductProcessor) -> ModifySearch:
    repo = MemoryRepository()
    rows = [_row(pid, *facts) for pid, facts in PRODUCTS.items()]
    repo.apply(rows, [])
    index = MemoryVectorIndex(dim=4)
    index.upsert(
        [
            stored_index_row(r, r["attributes"], np.array(PRODUCTS[r["product_id"]][0]), "m")
            for r in rows
        ]
    )
    encoder = cast(ModifyEncoder, ColourWords())
    return ModifySearch(processor, FixedTarget(index), repo, FixedModifier(encoder))


def test_the_words_choose_among_the_reference_neighbours(modify: ModifySearch) -> None:
    result = modify.search(ModifyQuery("in blue", product_id="ref", k=5))
    ids = [h.product_id for h in result.hits]
    assert result.model_version == "modify:modify-twin"
    assert ids[0] == "blue-dress" and "ref" not in ids and "blue-old" not in ids
    assert ids.index("red-dress") > 0
    top = result.hits[0]
    assert top.score == pytest.approx(top.embedding + top.profile)
    assert [h.score for h in result.hits] == sorted((h.score for h in result.hits), reverse=True)
    red = [h.product_id for h in modify.search(ModifyQuery("in red", product_id="ref")).hits]
    assert red[0] == "red-dress"
    boots = modify.search(ModifyQuery("in blue", "ref", filters=Filters(category="boot")))
    assert [h.product_id for h in boots.hits] == ["blue-boot"]
    paged = modify.search(ModifyQuery("in blue", "ref", k=1, offset=1)).hits
    assert [h.product_id for h in paged] == ids[1:2]
    assert modify.search(ModifyQuery("in blue", "ref", k=5, offset=modify.candidates)).hits == []


def test_the_reference_is_read_at_the_model_s_own_profile_weight(modify: ModifySearch) -> None:
    twin = ColourWords(profile_weight=3.0)
    modify.models = FixedModifier(cast(ModifyEncoder, twin))
    modify.search(ModifyQuery("in blue", product_id="ref"))
    reference = twin.references[-1]
    ratio = np.linalg.norm(reference[4:]) / np.linalg.norm(reference[:4])
    assert ratio == pytest.approx(3.0, rel=1e-4)


def test_references_and_models_are_checked(modify: ModifySearch) -> None:
    with pytest.raises(UnknownProduct):
        modify.search(ModifyQuery("in blue", product_id="nope"))
    with pytest.raises(ModifyUnavailable, match="embedded by old"):
        modify.search(ModifyQuery("in red", product_id="blue-old"))
    with pytest.raises(ModifierError):
        modify.search(ModifyQuery("   ", product_id="ref"))
    image = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(ModifyUnavailable, match="this API embeds with"):
        modify.search(ModifyQuery("in blue", image=image))  # the processor is not model "m"
    modify.models = FixedModifier(None)
    with pytest.raises(ModifyUnavailable, match="train modify"):
        modify.search(ModifyQuery("in blue", product_id="ref"))
