"""`stylestream train compact` and `stylestream eval compact`: train the gallery, compatible and
homogeneous encoders (training/compact.py), export each to ONNX with a card naming its role and
the gallery model it is compatible with, then judge the exports (training/compact_eval.py)."""

from __future__ import annotations

import hashlib
import json
import os
import platform
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from processors.embedding import ModelCard, OnnxEmbedder, card_path
from stores.registry import QueryModel
from training.compact import (
    Distillation,
    EncoderSpec,
    TrainConfig,
    train_compatible,
    train_homogeneous,
)
from training.compact_eval import EvalSizes, all_pairs, embed_all, plot, verdict
from training.compact_gallery import fixed_shots, train_gallery
from training.datasets import load_split, to_rgb
from training.export import export_onnx
from training.onnx_cost import count_cost, measure_speed
from training.real_shots import real_shots

MANIFEST = "compact-models.json"
ROLES = ("gallery", "compatible", "homogeneous")


def default_gallery() -> EncoderSpec:
    """Lite2 at its native 260 px, its last stage (blocks 15-20) and head trained. Training
    from block 11 too (cached block-10 maps, 2 cosine epochs: 3 times the cost) did worse:
    recall@10 0.884 against 0.914 (NOTES.md)."""
    return EncoderSpec("lite2", 260, 256, trainable_from=15)


def default_compact(image_size: int = 64) -> EncoderSpec:
    """Lite0's first 8 blocks (stride 16) at 64 px and a 512-channel head: ~14 M MACs, batch-1
    latency ~0.3 ms here (the full Lite0 at 64 px: 31 M, 0.86 ms)."""
    return EncoderSpec("lite0", image_size, 256, blocks=8)


@dataclass(frozen=True)
class CompactPlan:
    train_photos: int = 6000  # the gallery model's: the first ones of the train split
    compact_photos: int = 12000  # the compact models': the first ones of the train split
    shots_per_photo: int = 3  # the gallery model's cached SYNTHETIC shots of each photo
    # None: the deployment's base model is the gallery model (its collections exist already)
    gallery: EncoderSpec | None = field(default_factory=default_gallery)
    compact: EncoderSpec = field(default_factory=default_compact)
    gallery_training: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=3, batch=64))
    # 6 epochs at a constant rate: 7 with a cosine decay measured worse for both compact
    # models (homogeneous 0.769 against 0.812, NOTES.md)
    compact_training: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=6, batch=64))
    # the compatible model's training (None: compact_training's), maybe from the homogeneous
    # model's weights: measured worse (real-shot recall@10 0.628 after 4 cosine epochs from
    # them, 0.709 after 6 from ImageNet; NOTES.md)
    compatible_from_homogeneous: bool = False
    # the compatible model also regresses onto the gallery model's embedding of fixed shots
    # (training/compact.py Distillation): measured worse, 0.684 against 0.709 (NOTES.md)
    distil: bool = False
    compatible_training: TrainConfig | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _export(encoder: Any, spec: EncoderSpec, models_dir: Path, role: str, tag: str) -> Path:
    name = f"{spec.variant}-{spec.image_size}px-{role}-{tag}"
    path = models_dir / "compact" / f"{name}.onnx"
    export_onnx(encoder, path, spec.image_size, spec.dim, name)
    return path


def _stored_name(path: Path, models_dir: Path) -> str:
    """Relative to the models folder when inside it (the folder can move), else absolute."""
    resolved = path.resolve()
    inside = resolved.is_relative_to(models_dir.resolve())
    return str(resolved.relative_to(models_dir.resolve()) if inside else resolved)


def _distillation_by(
    gallery: Path, photos: Any, plan: CompactPlan, log: Callable[[str], None]
) -> Distillation:
    """Fixed shots of ``photos`` and a given gallery model's embeddings of them."""
    log(f"[compact] {plan.shots_per_photo} fixed shots of {len(photos)} photos, by {gallery}")
    shots = fixed_shots(photos, plan.shots_per_photo, plan.gallery_training.seed)
    flat = list(shots.reshape(-1, *shots.shape[2:]))
    targets = OnnxEmbedder(gallery).embed(flat).reshape(*shots.shape[:2], -1)
    return Distillation(shots, targets)


def train_compact_models(
    models_dir: Path,
    plan: CompactPlan,
    log: Callable[[str], None] = print,
    gallery_model: Path | None = None,
) -> dict[str, Any]:
    """Train and export the three models; the manifest names them and the compatibility.
    ``gallery_model``: an ONNX file (the base model, or a gallery model trained before), the
    gallery model when ``plan.gallery`` is None."""
    train = load_split("train")[0]
    images = train[: plan.compact_photos]
    named = {**plan.as_dict(), "gallery_model": str(gallery_model)}
    tag = hashlib.sha256(json.dumps(named, sort_keys=True).encode()).hexdigest()[:8]
    distillation = None
    if plan.gallery is None:
        if gallery_model is None:
            raise ValueError("a plan without a gallery model to train needs a gallery model file")
        paths = {"gallery": gallery_model}
        if plan.distil:
            distillation = _distillation_by(gallery_model, train[: plan.train_photos], plan, log)
    else:
        photos = train[: plan.train_photos]
        log(f"[compact] gallery model {plan.gallery} on {len(photos)} photos")
        shots = fixed_shots(photos, plan.shots_per_photo, plan.gallery_training.seed)
        gallery, cache = train_gallery(plan.gallery, photos, shots, plan.gallery_training, log)
        paths = {"gallery": _export(gallery, plan.gallery, models_dir, "gallery", tag)}
        if plan.distil:
            distillation = Distillation(shots, cache.shot_embeddings(gallery))
        del cache, shots  # the maps and, unless distilled from, the shots: GBs at full size
    gallery_version = ModelCard.read(card_path(paths["gallery"])).model_version
    log("[compact] gallery embeddings of the train photos (the compatible model's targets)")
    targets = OnnxEmbedder(paths["gallery"]).embed([to_rgb(g) for g in images])
    log(f"[compact] homogeneous compact model {plan.compact} (no compatibility loss)")
    homogeneous = train_homogeneous(plan.compact, images, plan.compact_training, log)
    paths["homogeneous"] = _export(homogeneous, plan.compact, models_dir, "homogeneous", tag)
    compact = replace(plan.compact, dim=targets.shape[1])  # lands in the gallery's space
    log(f"[compact] compatible query model {compact} -> {gallery_version}")
    compatible = train_compatible(
        compact,
        images,
        targets,
        plan.compatible_training or plan.compact_training,
        log,
        start_from=homogeneous if plan.compatible_from_homogeneous else None,
        distillation=distillation,
    )
    paths["compatible"] = _export(compatible, compact, models_dir, "compatible", tag)
    manifest = {
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "data": f"the first {plan.train_photos} (gallery model) and {len(images)} (compact "
        "models) Fashion-MNIST train photos and SYNTHETIC real shots of them "
        "(training/real_shots.py)",
        "plan": plan.as_dict(),
        "models": {role: _stored_name(p, models_dir) for role, p in paths.items()},
        "compatible_with": {"compatible": gallery_version},
    }
    (models_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def read_manifest(models_dir: Path) -> dict[str, Any]:
    path = models_dir / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `stylestream train compact` first")
    manifest: dict[str, Any] = json.loads(path.read_text())
    return manifest


def evaluate_compact(
    models_dir: Path, sizes: EvalSizes, log: Callable[[str], None] = print
) -> dict[str, Any]:
    manifest = read_manifest(models_dir)
    images, labels = load_split("t10k")
    photos = images[: sizes.gallery]
    gallery = [to_rgb(g) for g in photos]
    shots = real_shots(photos[: sizes.real_shots], seed=sizes.seed)
    embeddings, costs = {}, {}
    for role in ROLES:
        path = models_dir / manifest["models"][role]
        card = ModelCard.read(card_path(path))
        log(f"[compact] {role}: {card.model_version}")
        embeddings[role] = embed_all(OnnxEmbedder(path).embed, gallery, shots)
        cost = count_cost(path, card.image_size)
        costs[role] = {
            "model_version": card.model_version,
            "image_size": card.image_size,
            "macs": cost.macs,
            "gflops": round(cost.gflops, 4),
            "parameters": cost.parameters,
            **measure_speed(path, card.image_size, seconds=sizes.speed_seconds),
        }
    pairs = all_pairs(embeddings, labels[: sizes.gallery], sizes.plain)
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "gallery": f"{len(gallery)} Fashion-MNIST test photos (held out from training)",
        "queries": {
            "real_shot": f"{len(shots)} SYNTHETIC real shots of gallery photos (crop, scale, "
            "rotation, backdrop, colour cast, blur, JPEG; seed "
            f"{sizes.seed}): the shown item is the one relevant answer",
            "plain": f"{sizes.plain} gallery photos as queries (left out of their own "
            "results): relevance is the category",
        },
        "training": manifest,
        "costs": costs,
        "pairs": pairs,
        "done_when": verdict(pairs, costs),
    }


def write_report(report: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "compact.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, out / "compact.png")


def query_model(models_dir: Path, manifest: dict[str, Any]) -> QueryModel:
    """The compatible model of a manifest as the registry keeps it (its bytes, card, gallery
    model and lineage)."""
    path = models_dir / manifest["models"]["compatible"]
    card = ModelCard.read(card_path(path))
    artifact = path.read_bytes()
    return QueryModel(
        model_version=card.model_version,
        gallery_model_version=manifest["compatible_with"]["compatible"],
        image_size=card.image_size,
        dim=card.dim,
        artifact=artifact,
        artifact_sha256=hashlib.sha256(artifact).hexdigest(),
        card=asdict(card),
        metrics={},
        lineage={k: manifest[k] for k in ("trained_at", "data", "plan")},
    )
