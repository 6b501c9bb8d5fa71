"""``stylestream train outfits``: the outfit compatibility model (issue 17) trained, exported
and registered with its lineage (``stylestream index compat`` switches it)."""

from __future__ import annotations

import json

import click

from bench.outfit_eval import CompatRun, OutfitEvalSizes, train_outfits
from config import assembly
from config.settings import Settings
from processors.modify import PROFILE_WEIGHT
from stores.postgres import make_engine
from stores.side_models import CompatModels, SideModel
from training.outfit_export import export_compat


@click.command("outfits")
@click.option("--small", is_flag=True, help="A quick run (250 items, 20 steps).")
@click.option("--labels", default=0.1, show_default=True, help="Share of labelled outfits.")
@click.option("--supervised", is_flag=True, help="Labels only (no unlabelled items).")
@click.option("--steps", default=OutfitEvalSizes.steps, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.pass_obj
def train_outfits_cmd(
    settings: Settings, small: bool, labels: float, supervised: bool, steps: int, seed: int
) -> None:
    """The outfit compatibility model, trained as `stylestream eval outfits` judges it
    (SIMULATED outfits over SYNTHETIC garments and Fashion-MNIST photos, embedded by the served
    image path; semi-supervised unless --supervised), exported to ONNX and registered in
    Postgres with its lineage; it serves complete-the-look at once (the one before retires)."""
    if not 0 < labels <= 1:
        raise click.BadParameter("a share in (0, 1]", param_hint="--labels")
    sizes = OutfitEvalSizes.small() if small else OutfitEvalSizes(steps=steps)
    sizes = OutfitEvalSizes(**{**sizes.__dict__, "seed": seed, "seeds": 1})
    engine = make_engine(settings.pg_dsn)
    try:
        models = CompatModels(engine)
        try:
            models.check()  # before minutes of training, not after
        except LookupError as exc:
            raise click.ClickException(str(exc)) from exc
        processor = assembly.image_path(settings)
        run = train_outfits(processor, sizes, labels, semi=not supervised)
        model = compat_model(processor.embedder.model_version, processor.embedder.dim, run)
        models.register(model)
    finally:
        engine.dispose()
    click.echo(
        json.dumps(
            {
                "registered": model.model_version,
                "base_model_version": model.base_model_version,
                "label_fraction": labels,
                "held_out": run.report["held_out"],
                "data": run.report["data"],
                "wall_s": run.report["wall_s"],
            },
            indent=2,
        )
    )


def compat_model(base_version: str, base_dim: int, run: CompatRun) -> SideModel:
    """The trained model as the registry keeps it: its graph, metrics and lineage."""
    meta = {
        "base_dim": str(base_dim),
        "profile_weight": str(PROFILE_WEIGHT),
        "base_model_version": base_version,
    }
    artifact = export_compat(run.trained, run.probe, meta)
    digest = SideModel.digest(artifact)
    report = run.report
    return SideModel(
        model_version=f"compat-{digest[:12]}",
        base_model_version=base_version,
        dim=int(run.probe.shape[1]),
        artifact=artifact,
        artifact_sha256=digest,
        params={**report["config"], "profile_weight": PROFILE_WEIGHT},
        metrics={"held_out": report["held_out"], "visual_similarity": report["visual_similarity"]},
        lineage={
            "label_fraction": report["label_fraction"],
            "labelled_outfits": report["labelled_outfits"],
            "unlabelled_items": report["unlabelled_items"],
            "unlabelled_outfits": report["unlabelled_outfits"],
            "pseudo_labelled_outfits": report["pseudo_labelled_outfits"],
            "data": report["data"],
            "sizes": report["sizes"],
            "base_model_version": base_version,
        },
    )
