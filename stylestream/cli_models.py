"""``stylestream train`` and ``stylestream eval``: model training and held-out evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import click

from stylestream.settings import Settings


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
    from processors.detector import detector_path
    from processors.tagger import tagger_path
    from stylestream.components import open_embedder
    from training.attributes import Sizes, train_attributes

    models = settings.models_path
    if not force and detector_path(models).exists() and tagger_path(models).exists():
        click.echo(f"{detector_path(models)} and {tagger_path(models)} exist (--force retrains)")
        return
    sizes = Sizes(fashion_mnist=fashion_mnist, synthetic=synthetic, detector_scenes=detector_scenes)
    detector, tagger = train_attributes(
        models, open_embedder(settings), sizes, log=lambda m: click.echo(m, err=True)
    )
    click.echo(f"{detector}\n{tagger}")


@click.group(name="eval")
def evaluate() -> None:
    """Evaluate the served models on held-out data (JSON out)."""


@evaluate.command("attributes")
@click.option("--fashion-mnist", default=2000, show_default=True, help="Test photos.")
@click.option("--synthetic", default=1000, show_default=True, help="Held-out SYNTHETIC garments.")
@click.option("--gallery", default=4000, show_default=True, help="Gallery photos for search.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("bench/results"))
@click.option("--json", "as_json", is_flag=True, help="One line of JSON.")
@click.pass_obj
def eval_attributes(
    settings: Settings, fashion_mnist: int, synthetic: int, gallery: int, out: Path, as_json: bool
) -> None:
    """Per-attribute P/R/F1, macro-F1 per group, category accuracy (model, search, fusion) and
    the learned box's IoU against the foreground box; writes attributes.json and a PNG."""
    from stylestream.components import open_embedder, open_finder, open_tagger
    from training.evaluate_attributes import EvalSizes, evaluate_attributes, plot

    sizes = EvalSizes(fashion_mnist, synthetic, gallery, max(1, gallery // 2))
    report = evaluate_attributes(
        open_embedder(settings),
        open_finder(settings),
        open_tagger(settings),
        sizes,
        log=lambda m: click.echo(m, err=True),
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "attributes.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, out / "attributes.png")
    click.echo(json.dumps(report, indent=None if as_json else 2))
