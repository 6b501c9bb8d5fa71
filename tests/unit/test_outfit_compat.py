"""Outfit compatibility: the type-aware model learns a rule from labelled outfits (and runs its
semi-supervised losses on unlabelled items), its ONNX graph matches torch and carries its pair head,
complete-the-look reranks each role's candidates by compatibility on the in-memory twins, and
the eval's AUC and judging are right on known inputs."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import numpy as np
import onnx
import pytest
import torch

from bench.outfit_eval import (
    BASELINES,
    FRACTIONS,
    METHODS,
    OutfitEvalSizes,
    auc,
    judge,
    run_outfit_eval,
    write_outfit_report,
)
from bench.stylist import Blank, Piece, SimulatedOutfit
from processors.colour import PALETTE_NAMES
from processors.modify import PROFILE_WIDTH
from processors.outfit_compat import (
    N_ROLES,
    ROLE_INDEX,
    CompatEncoder,
    CompatHead,
    CompatLayoutError,
)
from processors.products import ProductProcessor
from schemas.interactions import Query
from search.outfits import (
    WORN_WITH,
    CompatUnavailable,
    CompleteTheLook,
    FixedCompat,
    LookQuery,
    NoOutfitRole,
    UnknownRole,
    check_roles,
    role_of,
)
from search.service import UnknownProduct
from stores.base import FixedTarget
from stores.memory import MemoryRepository, MemoryVectorIndex
from stores.rows import encode_base, stored_index_row
from training.outfit_export import export_compat
from training.outfit_model import (
    CompatConfig,
    Outfits,
    TrainedCompat,
    TypeAwareCompat,
    pseudo_labelled,
    train_compat,
)

COLOURS = 4


def _toy(n: int = 80, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Items of 4 colours (one-hot, noisy) as tops and bottoms; views: the same colour, other
    noise."""
    rng = np.random.default_rng(seed)
    colour = (np.arange(n) // 2) % COLOURS
    roles = np.where(np.arange(n) % 2 == 0, ROLE_INDEX["top"], ROLE_INDEX["bottom"])

    def draw() -> np.ndarray:
        x = np.eye(COLOURS)[colour] + rng.normal(0, 0.2, (n, COLOURS))
        return np.concatenate([x, rng.normal(0, 1, (n, 4))], axis=1).astype(np.float32)

    return draw(), np.stack([draw(), draw()], axis=1), roles


def _pairs(
    colour: np.ndarray, roles: np.ndarray, rows: Sequence[int], same: bool
) -> list[list[int]]:
    tops = [r for r in rows if roles[r] == ROLE_INDEX["top"]]
    bottoms = [r for r in rows if roles[r] == ROLE_INDEX["bottom"]]
    return [[t, b] for t in tops for b in bottoms if (colour[t] == colour[b]) == same]


@dataclass(frozen=True)
class ToyTask:
    """120 toy items: the first 40 in labelled outfits (same colour goes, balanced), the next
    40 a pool, the last 40 held out."""

    features: np.ndarray
    views: np.ndarray
    roles: np.ndarray
    colour: np.ndarray
    labelled: Outfits
    bad: list[list[int]]  # incompatible outfits of the labelled items
    pool: list[int]
    test: list[int]

    @classmethod
    def make(cls) -> ToyTask:
        features, views, roles = _toy(120)
        colour = (np.arange(len(features)) // 2) % COLOURS
        train = list(range(40))
        good, bad = _pairs(colour, roles, train, True), _pairs(colour, roles, train, False)
        labelled = Outfits.of(good + bad[: len(good)], roles,
                              [True] * len(good) + [False] * len(good))  # fmt: skip
        return cls(features, views, roles, colour, labelled, bad, list(range(40, 80)),
                   list(range(80, 120)))  # fmt: skip

    def held_out_auc(self, scores_of: Callable[[list[list[int]]], np.ndarray]) -> float:
        """AUC of ``scores_of`` (outfits of item rows -> scores) on the held-out items."""
        c, r = self.colour, self.roles
        outfits = _pairs(c, r, self.test, True) + _pairs(c, r, self.test, False)
        return auc(scores_of(outfits), np.array([c[a] == c[b] for a, b in outfits]))


def _served_scores(
    trained: TrainedCompat, features: np.ndarray, roles: np.ndarray
) -> Callable[[list[list[int]]], np.ndarray]:
    """Outfits scored one by one as the API scores them (the numpy head)."""
    e, head = trained.embeddings(features), trained.head()
    return lambda outfits: np.array(
        [head.outfit_score(e[o], [int(roles[r]) for r in o]) for o in outfits]
    )


def test_the_model_learns_a_rule_and_semi_supervision_uses_unlabelled_items() -> None:
    task = ToyTask.make()
    features, views, roles, labelled = task.features, task.views, task.roles, task.labelled
    unlabelled = np.array(task.pool)  # no label is read from these
    for semi in (False, True):
        config = CompatConfig(steps=300, batch=32, dim=8, hidden=32, semi=semi)
        trained = train_compat(features, views, roles, labelled, unlabelled, config)
        served = _served_scores(trained, features, roles)
        assert task.held_out_auc(served) > 0.9, semi  # unseen items, the rule learned
        assert len(trained.history) == 300 and np.isfinite(trained.history).all()
    with pytest.raises(ValueError, match="compatible"):
        train_compat(features, views, roles, Outfits.of(task.bad[:4], roles, [False] * 4),
                     unlabelled, CompatConfig(steps=1))  # fmt: skip


def test_self_training_labels_the_outfits_it_is_surest_of_and_learns_from_them() -> None:
    task = ToyTask.make()
    features, views, roles, labelled = task.features, task.views, task.roles, task.labelled
    colour, pool = task.colour, task.pool
    sames = _pairs(colour, roles, pool, True)
    rest = sames + _pairs(colour, roles, pool, False)[: len(sames)]  # unlabelled, balanced
    config = CompatConfig(steps=300, batch=32, dim=8, hidden=32, semi=True, self_training=0.25)
    first = train_compat(features, views, roles, labelled, np.array(pool), config)
    assert first.pseudo_labelled == 0  # no unlabelled outfits given: one model
    sure = pseudo_labelled(first, features, Outfits.unlabelled(rest, roles), 0.25)
    assert len(sure) == pytest.approx(0.5 * len(rest), abs=2)
    truth = np.array([colour[o[0]] == colour[o[1]] for o in sure.items])
    assert ((sure.labels > 0) == truth).mean() > 0.9  # the extremes' labels are mostly right
    assert (sure.labels > 0).sum() == (sure.labels == 0).sum()
    with pytest.raises(ValueError, match="share"):
        pseudo_labelled(first, features, Outfits.unlabelled(rest, roles), 0.5)
    second = train_compat(features, views, roles, labelled, np.array(pool), config, rest)
    assert second.pseudo_labelled == len(sure)
    assert (
        task.held_out_auc(
            lambda outfits: second.outfit_scores(features, Outfits.unlabelled(outfits, roles))
        )
        > 0.9
    )
    supervised = replace(config, semi=False)  # supervised-only never labels outfits itself
    assert train_compat(features, views, roles, labelled, np.array(pool), supervised,
                        rest).pseudo_labelled == 0  # fmt: skip


def test_outfits_of_different_sizes_add_up_padded() -> None:
    roles = np.arange(5) % N_ROLES
    both = Outfits.of([[0, 1]], roles, [True]) + Outfits.unlabelled([[2, 3, 4]], roles)
    assert both.items.tolist() == [[0, 1, 0], [2, 3, 4]]
    assert both.valid.tolist() == [[True, True, False], [True, True, True]]
    assert both.labels.tolist() == [1.0, 0.0] and both.roles[1].tolist() == [2, 3, 4]


def distance_head(dim: int, tau: float = 0.1) -> CompatHead:
    """A hand-set head whose pair incompatibility is softplus(4 x the masked L1 gap)."""
    w1 = np.vstack([np.zeros((dim, dim)), np.eye(dim)]).astype(np.float32)
    return CompatHead(np.ones((N_ROLES, N_ROLES, dim), np.float32), w1,
                      np.zeros(dim, np.float32), np.ones(dim, np.float32), 0.0, tau)  # fmt: skip


def _softplus(x: float) -> float:
    return float(np.log1p(np.exp(x)))


def test_outfit_and_pair_scores_agree_masks_weigh_dimensions_and_the_worst_pair_counts() -> None:
    e = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], np.float32)
    head = distance_head(2)
    head.masks[0, 1] = head.masks[1, 0] = [1.0, 0.0]  # top-bottom pairs read dimension 0 only
    assert head.outfit_score(e[:2], [0, 1]) == pytest.approx(-_softplus(4.0))
    assert head.outfit_score(e[:2], [0, 4]) == pytest.approx(-_softplus(8.0))
    assert head.pair_scores(e[0], 0, e[1:], 1) == pytest.approx([-_softplus(4.0), -_softplus(0)])
    assert head.outfit_score(e[:1], [0]) == 0.0
    # two items alike and one far: a soft maximum, near the worst pair, not the pairs' mean
    three = head.outfit_score(e, [0, 4, 0])
    worst, mean = -_softplus(8.0), -(2 * _softplus(8.0) + _softplus(0.0)) / 3
    assert worst - 0.1 < three < mean
    assert CompatHead.from_json(head.to_json()).outfit_score(e, [0, 4, 0]) == pytest.approx(three)


def test_the_torch_model_scores_outfits_as_the_served_head() -> None:
    model = TypeAwareCompat(6, 8, 16, 0.0)
    with torch.no_grad():
        model.masks.normal_()
    rng = np.random.default_rng(3)
    items = [[0, 1, 2], [3, 4], [5, 6, 7, 8]]
    roles = np.array([0, 1, 4, 3, 4, 0, 1, 4, 5])
    x = rng.normal(size=(9, 6)).astype(np.float32)
    model.eval()
    with torch.no_grad():
        e = model.embed(torch.from_numpy(x))
        o = Outfits.of(items, roles, [True] * 3)
        got = model.outfit_scores(e[torch.from_numpy(o.items)], torch.from_numpy(o.roles),
                                  torch.from_numpy(o.valid)).numpy()  # fmt: skip
    head, en = model.head(), e.numpy()
    want = [head.outfit_score(en[i], [int(roles[r]) for r in i]) for i in items]
    assert got == pytest.approx(want, abs=1e-5)


@pytest.fixture(scope="module")
def trained() -> TrainedCompat:
    width = 4 + PROFILE_WIDTH
    rng = np.random.default_rng(0)
    features = rng.normal(size=(12, width)).astype(np.float32)
    roles = np.array([ROLE_INDEX["top"], ROLE_INDEX["bottom"]] * 6)
    labelled = Outfits.of([[0, 1], [2, 3], [4, 5]], roles, [True, False, True])
    views = np.stack([features, features], axis=1)
    return train_compat(features, views, roles, labelled, np.arange(12),
                        CompatConfig(steps=3, dim=8, hidden=16))  # fmt: skip


@pytest.fixture(scope="module")
def artifact(trained: TrainedCompat) -> bytes:
    probe = np.random.default_rng(1).normal(size=(3, 4 + PROFILE_WIDTH)).astype(np.float32)
    meta = {"base_dim": "4", "profile_weight": "1.5", "base_model_version": "m"}
    return export_compat(trained, probe, meta)


def test_the_exported_graph_embeds_as_torch_and_carries_its_head(
    trained: TrainedCompat, artifact: bytes
) -> None:
    served = CompatEncoder(artifact, "compat-test")
    assert (served.base_dim, served.profile_weight, served.base_model_version) == (4, 1.5, "m")
    x = np.random.default_rng(2).normal(size=(5, 4 + PROFILE_WIDTH)).astype(np.float32)
    assert served.embed(x) == pytest.approx(trained.embeddings(x), abs=1e-4)
    head = trained.head()
    for key in ("masks", "w1", "b1", "w2"):
        assert getattr(served.head, key) == pytest.approx(getattr(head, key), abs=1e-5)
    assert (served.head.b2, served.head.tau) == pytest.approx((head.b2, head.tau), abs=1e-5)
    assert served.embed(x[:0]).shape == (0, 8)


def _relabelled(artifact: bytes, key: str, value: str) -> bytes:
    graph = onnx.load_from_string(artifact)
    for prop in graph.metadata_props:
        if prop.key == key:
            prop.value = value
    data: bytes = graph.SerializeToString()
    return data


def test_a_model_of_another_layout_or_role_list_is_refused(artifact: bytes) -> None:
    with pytest.raises(CompatLayoutError, match="another feature layout"):
        CompatEncoder(_relabelled(artifact, "layout", "0123456789abcdef"), "compat-old")
    with pytest.raises(CompatLayoutError):
        CompatEncoder(_relabelled(artifact, "roles", '["top", "bottom"]'), "compat-old")
    with pytest.raises(CompatLayoutError, match="pair head"):  # a model of the masks alone
        CompatEncoder(_relabelled(artifact, "head", "{}"), "compat-old")
    head = json.loads(onnx_meta(artifact)["head"])
    broken = [[], {**head, "tau": 0}, {**head, "tau": float("nan")}, {**head, "w2": [1.0]},
              {**head, "masks": [[1.0]]}, {**head, "b1": "x"}]  # fmt: skip
    masks = np.array(head["masks"])
    masks[0, 1] += 1.0
    broken.append({**head, "masks": masks.tolist()})  # not symmetric
    for value in broken:
        with pytest.raises(CompatLayoutError, match="pair head"):
            CompatEncoder(_relabelled(artifact, "head", json.dumps(value)), "compat-bad")


def onnx_meta(artifact: bytes) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load_from_string(artifact).metadata_props}


# id -> (base embedding, colour, department, base model)
PRODUCTS = {
    "red-top": ([1.0, 0.0, 0.0, 0.0], "red", "tops", "m"),
    "other-top": ([1.0, 0.1, 0.0, 0.0], "red", "tops", "m"),
    "blue-trouser": ([0.95, 0.3, 0.0, 0.0], "blue", "bottoms", "m"),  # looks most alike
    "red-skirt": ([0.0, 1.0, 0.0, 0.0], "red", "bottoms", "m"),  # goes best
    "red-old-skirt": ([0.0, 1.0, 0.0, 0.0], "red", "bottoms", "old"),
    "blue-sneaker": ([0.9, 0.0, 0.4, 0.0], "blue", "footwear", "m"),
    "red-boot": ([0.0, 0.0, 1.0, 0.0], "red", "footwear", "m"),
    "hat": ([0.0, 0.0, 0.0, 1.0], "red", "", "m"),
}


def _row(pid: str, embedding: Sequence[float], colour: str, department: str, model: str) -> Any:
    now = datetime.now(UTC)
    attributes = [{"attribute_key": f"colour.{colour}", "confidence": 0.9, "source": "model",
                   "model_version": "t"}]  # fmt: skip
    if department:
        attributes.append({"attribute_key": f"department.{department}", "confidence": 0.9,
                           "source": "derived", "model_version": "t"})  # fmt: skip
    return {
        "product_id": pid, "version": 1, "title": pid, "search_text": pid,
        "category": department, "price": 10, "currency": "EUR", "image_ref": "x",
        "synthetic_fields": ["title"], "roi_box": [0, 0, 1, 1], "image_width": 1,
        "image_height": 1, "primary_colour": colour, "colour_fractions": {colour: 1.0},
        "colour_vector": [0.0], "model_version": model, "event_time": now, "indexed_at": now,
        "predicted_category": department, "base_embedding": encode_base(np.array(embedding)),
        "attributes": attributes,
    }  # fmt: skip


class SameColour:
    """A twin of the compatibility model: an item's embedding is its colour shares, so items
    of one colour go together."""

    model_version = "compat-twin"
    base_dim = 4
    base_model_version = "m"
    profile_weight = 1.5
    head = distance_head(len(PALETTE_NAMES))

    def embed(self, features: np.ndarray) -> np.ndarray:
        shares = features[:, -len(PALETTE_NAMES) :]
        out: np.ndarray = shares / np.maximum(np.linalg.norm(shares, axis=1, keepdims=True), 1e-6)
        return out


@pytest.fixture
def looks() -> CompleteTheLook:
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
    return CompleteTheLook(FixedTarget(index), repo, FixedCompat(cast(CompatEncoder, SameColour())))


def test_each_role_s_candidates_are_reranked_by_compatibility(looks: CompleteTheLook) -> None:
    result = looks.complete(LookQuery("red-top", ("bottom", "shoes"), k=5))
    assert result.product_role == "top" and result.model_version == "compat:compat-twin"
    bottoms = result.by_role["bottom"]
    assert [h.product_id for h in bottoms] == ["red-skirt", "blue-trouser"]  # no old, no top
    assert bottoms[0].retrieved_rank == 2 and bottoms[1].retrieved_rank == 1
    assert bottoms[0].score > bottoms[1].score and bottoms[0].similarity < bottoms[1].similarity
    assert [h.product_id for h in result.by_role["shoes"]] == ["red-boot", "blue-sneaker"]
    default = looks.complete(LookQuery("red-top", k=1))
    assert tuple(default.by_role) == WORN_WITH["top"]
    assert [h.product_id for h in default.by_role["bottom"]] == ["red-skirt"]
    assert default.by_role["outer"] == []  # none in the catalogue


def test_look_queries_and_models_are_checked(looks: CompleteTheLook) -> None:
    with pytest.raises(UnknownRole, match="hat"):
        looks.complete(LookQuery("red-top", ("hat",)))
    with pytest.raises(NoOutfitRole, match="no department"):
        looks.complete(LookQuery("hat"))
    with pytest.raises(UnknownRole, match="a top is not worn with a top"):
        looks.complete(LookQuery("red-top", ("shoes", "top")))
    with pytest.raises(ValueError, match="k must be"):
        looks.complete(LookQuery("red-top", k=0))
    with pytest.raises(UnknownProduct):
        looks.complete(LookQuery("nope"))
    with pytest.raises(CompatUnavailable, match="embedded by old"):
        looks.complete(LookQuery("red-old-skirt"))
    looks.models = FixedCompat(None)
    with pytest.raises(CompatUnavailable, match="train outfits"):
        looks.complete(LookQuery("red-top"))
    assert check_roles(["shoes", "bag", "shoes"]) == ("shoes", "bag")
    assert role_of(["colour.red", "department.footwear"]) == "shoes"
    assert role_of(["colour.red"]) is None


def test_outfit_impressions_carry_the_product_and_the_role() -> None:
    q = Query(kind="outfit", product_id="red-top", role="shoes")
    assert q.model_dump(mode="json")["role"] == "shoes"
    assert "role" not in Query(kind="product", product_id="x").model_dump(mode="json")
    for bad in (
        {"kind": "outfit", "product_id": "x"},
        {"kind": "product", "product_id": "x", "role": "top"},
        {"kind": "outfit", "product_id": "x", "role": "hat"},
        {"kind": "outfit", "text": "x", "role": "top"},
    ):
        with pytest.raises(ValueError):
            Query.model_validate(bad)


def test_auc_and_judging_on_known_inputs() -> None:
    assert auc(np.array([0.9, 0.8, 0.1]), np.array([True, True, False])) == 1.0
    assert auc(np.array([0.5, 0.5]), np.array([True, False])) == 0.5
    assert np.isnan(auc(np.array([0.5]), np.array([True])))
    pieces = [Piece(p, "top", "red", "solid", 0.5, 0.0) for p in "abcde"]
    outfit = SimulatedOutfit("o", (pieces[0], pieces[1]), True, True, 0.9)
    wrong = SimulatedOutfit("w", (pieces[0], pieces[2]), False, False, 0.9)
    blank = Blank(outfit, 1, ("c", "b", "d", "e"), "b")

    def scorer(ids: Sequence[str]) -> float:
        return 1.0 if "b" in ids else 0.0

    assert judge(scorer, [blank], [outfit, wrong]) == {"fitb": 1.0, "auc": 1.0}
    assert judge(lambda ids: 0.0, [blank], [outfit, wrong])["fitb"] == 0.0  # "c" first: wrong


def test_eval_outfits_reports_every_method_fraction_and_seed(
    processor: ProductProcessor, tmp_path: Path
) -> None:
    sizes = OutfitEvalSizes.small()
    report = run_outfit_eval(processor, sizes)
    assert report["data"].startswith("SIMULATED")
    summary = report["summary"]
    keys = {*BASELINES, *(f"{m}@{f:g}" for f in FRACTIONS for m in METHODS)}
    assert set(summary) == keys
    for entry in summary.values():
        for metric in ("fitb", "auc"):
            assert len(entry[metric]["seeds"]) == sizes.seeds
            assert all(0 <= v <= 1 for v in entry[metric]["seeds"])
    for seed in report["per_seed"]:
        assert seed["questions"] > 0 and seed["test_outfits"] > 0
        assert seed["semi_supervised@0.05"]["train_s"] >= 0
    assert set(report["done_when"]) == {"fitb", "auc", "fitb_share_of_full_supervision", "met"}
    assert report["items"]["features"] == processor.embedder.dim + PROFILE_WIDTH
    write_outfit_report(report, tmp_path / "outfits.json")
    assert json.loads((tmp_path / "outfits.json").read_text())["sizes"]["seeds"] == sizes.seeds
    assert (tmp_path / "outfits.png").stat().st_size > 0
