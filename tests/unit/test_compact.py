"""The compact-model evaluation's parts with no service: SYNTHETIC real shots, the cost counted
from an ONNX graph, and the retrieval metrics on hand-made embeddings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.compact_eval import Embeddings, all_pairs, category_metrics, instance_metrics
from training.datasets import load_split, to_rgb
from training.onnx_cost import count_cost
from training.real_shots import ShotConfig, real_shots


def test_real_shots_are_reproducible_degraded_colour_photos() -> None:
    images, _ = load_split("t10k")
    shots = real_shots(images[:6], seed=3)
    again = real_shots(images[:6], seed=3)
    other = real_shots(images[:6], seed=4)
    assert all(s.shape == (128, 128, 3) and s.dtype == np.uint8 for s in shots)
    assert all(np.array_equal(a, b) for a, b in zip(shots, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(shots, other, strict=True))
    # a backdrop replaces the black: the shots' corners are seldom black, the photos' always
    corners = [s[:4, :4].mean() for s in shots]
    assert sum(c > 20 for c in corners) >= 4
    assert all(to_rgb(g)[:2, :2].max() == 0 for g in images[:6])
    small = real_shots(images[:2], seed=0, config=ShotConfig(size=64))
    assert small[0].shape == (64, 64, 3)


def test_the_cost_is_counted_from_the_graph(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from training.export import export_onnx

    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, stride=2, padding=1),  # 8 x 16 x 16 outputs, 27 MACs each
        torch.nn.Conv2d(8, 8, 3, padding=1, groups=8),  # depthwise: 9 MACs each
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 4),  # 32 MACs
    ).eval()
    path = tmp_path / "tiny.onnx"
    export_onnx(model, path, 32, 4, "tiny")
    cost = count_cost(path, 32)
    assert cost.macs == 8 * 16 * 16 * 27 + 8 * 16 * 16 * 9 + 32
    assert cost.parameters == sum(p.numel() for p in model.parameters())
    assert cost.gflops == pytest.approx(2 * cost.macs / 1e9)


def _unit(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def test_instance_metrics_rank_the_shown_item() -> None:
    gallery = np.eye(12, dtype=np.float32)
    queries = gallery[:4].copy()  # queries 0 and 3: their item first
    queries[1] = _unit(gallery[[1]] * 0.5 + gallery[[5]])[0]  # item 1 second, after item 5
    queries[2] = _unit(np.ones((1, 12), np.float32) - 2 * gallery[[2]])[0]  # item 2 last of 12
    metrics = instance_metrics(queries, gallery)
    assert metrics == {"recall_at_10": 0.75, "map_at_10": (1 + 0.5 + 0 + 1) / 4}


def test_category_metrics_leave_the_query_out() -> None:
    labels = np.array([0] * 6 + [1] * 6)
    clustered = np.zeros((12, 4), np.float32)
    clustered[:6, 0] = 1.0
    clustered[6:, 1] = 1.0
    clustered += np.random.default_rng(0).normal(0, 0.01, clustered.shape).astype(np.float32)
    metrics = category_metrics(_unit(clustered)[:3], _unit(clustered), labels)
    # the five others of the category come first, then five of the other: P@10 0.5, AP 1
    assert metrics == {"precision_at_10": 0.5, "map_at_10": 1.0}
    # a query whose one neighbour of its category ranks first, its four others last
    eye = np.eye(4, dtype=np.float32)
    spread = np.random.default_rng(1).normal(0, 0.01, (30, 4)).astype(np.float32)
    far = np.concatenate([eye[[0, 0]], -eye[[0, 0, 0, 0]], eye[[1] * 30] + spread])
    got = category_metrics(_unit(far)[:1], _unit(far), np.array([0] * 6 + [1] * 30))
    assert got == {"precision_at_10": 0.1, "map_at_10": 0.2}  # one hit of five possible


def test_the_pairs_read_the_right_sides() -> None:
    rng = np.random.default_rng(1)
    g = _unit(rng.normal(size=(40, 8)).astype(np.float32))
    gallery = Embeddings(gallery=g, shots=g.copy())  # the gallery model sees through shots
    compatible = Embeddings(gallery=g.copy(), shots=g.copy())  # lands in its space
    own = _unit(rng.normal(size=(40, 8)).astype(np.float32))
    homogeneous = Embeddings(gallery=own, shots=_unit(rng.normal(size=(40, 8)).astype(np.float32)))
    pairs = all_pairs(
        {"gallery": gallery, "compatible": compatible, "homogeneous": homogeneous},
        labels=np.arange(40) % 4,
        plain=10,
    )
    assert pairs["paragon"]["real_shot"]["recall_at_10"] == 1.0
    assert pairs["compatible"]["real_shot"]["recall_at_10"] == 1.0
    assert pairs["homogeneous"]["real_shot"]["recall_at_10"] < 0.6
    assert pairs["unadapted"]["real_shot"]["recall_at_10"] < 0.6


def test_distillation_gives_cached_shots_their_own_targets() -> None:
    """Rows with cached shots get one of their shots and the gallery model's embedding of
    it; rows past the cache get a fresh shot and their photo's embedding."""
    torch = pytest.importorskip("torch")
    from training.compact import Distillation

    images, _ = load_split("t10k")
    shots = np.stack([np.full((3, 128, 128, 3), s, np.uint8) for s in (10, 20)])
    targets = np.stack([np.full((3, 4), s, np.float32) for s in (1.0, 2.0)])
    photo_targets = torch.full((4, 4), -1.0)
    rows = np.array([2, 5, 0, 4])
    got, seen = Distillation(shots, targets).queries(
        images[:6], rows, photo_targets, np.random.default_rng(0)
    )
    for i in (0, 2):  # covered: shot s of value 10 * (s + 1), target s + 1
        level = int(got[i][0, 0, 0])
        assert level in (10, 20) and (got[i] == level).all()
        assert seen[i].tolist() == [level / 10] * 4
    for i in (1, 3):  # past the cache: a fresh 128 px shot, the photo's target
        assert got[i].shape == (128, 128, 3) and got[i].std() > 0
        assert seen[i].tolist() == [-1.0] * 4
    assert photo_targets.eq(-1).all()  # the caller's tensor is left alone


def test_train_export_and_evaluate_at_a_tiny_scale(tmp_path: Path) -> None:
    """The whole path on 96 photos at small sizes: three ONNX models with a manifest naming
    the compatibility, then every figure of the report (values judged by the real run)."""
    pytest.importorskip("torch")
    from processors.embedding import ModelCard, card_path
    from training.compact import EncoderSpec, TrainConfig
    from training.compact_eval import EvalSizes
    from training.compact_run import CompactPlan, evaluate_compact, train_compact_models

    plan = CompactPlan(
        train_photos=64,  # the gallery model's shots cover the compact models' first 64
        compact_photos=96,
        gallery=EncoderSpec("lite2", 64, dim=32, trainable_from=15),
        compact=EncoderSpec("lite0", 32, dim=32),
        gallery_training=TrainConfig(epochs=1, batch=32),
        compact_training=TrainConfig(epochs=1, batch=32),
        distil=True,  # the gallery model's cached shots: its own embeddings of them
    )
    manifest = train_compact_models(tmp_path, plan, log=lambda m: None)
    cards = {
        role: ModelCard.read(card_path(tmp_path / path))
        for role, path in manifest["models"].items()
    }
    assert set(cards) == {"gallery", "compatible", "homogeneous"}
    assert manifest["compatible_with"] == {"compatible": cards["gallery"].model_version}
    assert cards["compatible"].image_size == 32 and cards["gallery"].dim == 32
    sizes = EvalSizes(gallery=120, real_shots=40, plain=30, speed_seconds=0.2)
    report = evaluate_compact(tmp_path, sizes)
    assert set(report["pairs"]) == {"paragon", "compatible", "homogeneous", "unadapted"}
    for pair in report["pairs"].values():
        assert 0 <= pair["real_shot"]["recall_at_10"] <= 1
        assert 0 <= pair["plain"]["precision_at_10"] <= 1
    costs = report["costs"]
    assert costs["gallery"]["macs"] > 4 * costs["compatible"]["macs"] > 0
    assert costs["compatible"]["batch1_p50_ms"] > 0 and costs["gallery"]["batched_images_per_s"] > 0
    assert report["done_when"]["flops_ratio"] == round(
        costs["gallery"]["macs"] / costs["compatible"]["macs"], 1
    )
    assert "SYNTHETIC" in report["queries"]["real_shot"]


def test_frozen_features_match_torch_and_truncation_cuts_the_cost(tmp_path: Path) -> None:
    """The gallery training's cache (ONNX Runtime, float16) is the frozen blocks' torch output;
    a compact spec's first blocks and narrow head cost a fraction of the full backbone."""
    torch = pytest.importorskip("torch")
    from training.compact import EncoderSpec, build_encoder, to_batch
    from training.compact_gallery import FrozenFeatures
    from training.datasets import load_split, to_rgb
    from training.export import export_onnx
    from training.onnx_cost import count_cost

    spec = EncoderSpec("lite2", 64, dim=16, trainable_from=15)
    encoder = build_encoder(spec).eval()
    images = [to_rgb(g) for g in load_split("t10k")[0][:5]]
    cached = FrozenFeatures(encoder, spec, threads=1)(images)
    with torch.no_grad():
        expected = encoder.frozen_part(to_batch(images, 64)).numpy()
    assert cached.dtype == np.float16 and cached.shape == expected.shape
    assert np.abs(cached.astype(np.float32) - expected).max() < 0.05 * np.abs(expected).max()
    with torch.no_grad():  # the tail on the cache is the whole encoder
        whole = encoder(to_batch(images, 64)).numpy()
        tail = encoder.tail(torch.from_numpy(cached.astype(np.float32))).numpy()
    assert np.abs(whole - tail).max() < 0.02
    assert not any(p.requires_grad for p in encoder.blocks[:15].parameters())

    macs = {}
    for blocks in (0, 8):
        compact = EncoderSpec("lite0", 64, dim=16, blocks=blocks)
        path = tmp_path / f"lite0-{blocks}.onnx"
        export_onnx(build_encoder(compact).eval(), path, 64, 16, f"lite0-{blocks}")
        macs[blocks] = count_cost(path, 64).macs
    assert macs[8] < 0.6 * macs[0]


@pytest.mark.parametrize("value", ["/etc/model.onnx", "../elsewhere/model.onnx", "model.bin"])
def test_the_base_model_setting_stays_inside_the_models_folder(value: str) -> None:
    from pydantic import ValidationError

    from config.settings import Settings

    with pytest.raises(ValidationError, match="inside the models folder"):
        Settings(base_model=value)
    assert Settings(base_model="compact/gallery.onnx").base_model == "compact/gallery.onnx"
