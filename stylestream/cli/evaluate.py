"""``stylestream eval``: the served models and the click loop judged on held-out data."""

from __future__ import annotations

import json
from pathlib import Path

import click

from bench.click_loop import LoopSizes, run_click_loop
from bench.modify_eval import ModifyEvalSizes, run_modify_eval, write_modify_report
from bench.outfit_eval import OutfitEvalSizes, run_outfit_eval, write_outfit_report
from bench.text_eval import TextEvalSizes, run_text_seeds, write_text_report
from config import assembly
from config.settings import Settings
from training.compact_eval import EvalSizes as CompactSizes
from training.compact_run import evaluate_compact, write_report
from training.evaluate_attributes import EvalSizes, evaluate_attributes, plot


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
    sizes = EvalSizes(fashion_mnist, synthetic, gallery, max(1, gallery // 2))
    report = evaluate_attributes(
        assembly.open_embedder(settings),
        assembly.open_finder(settings),
        assembly.open_tagger(settings),
        sizes,
        log=lambda m: click.echo(m, err=True),
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "attributes.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, out / "attributes.png")
    click.echo(json.dumps(report, indent=None if as_json else 2))


@evaluate.command("clicks")
@click.option("--small", is_flag=True, help="A quick run (300 products, 40 sessions).")
@click.option("--json", "as_json", is_flag=True)
@click.option("--out", type=click.Path(path_type=Path), default=Path("bench/results/clicks.json"))
@click.pass_obj
def eval_clicks(settings: Settings, small: bool, as_json: bool, out: Path) -> None:
    """The loop end to end in its own database and topics: base vs trained on held-out
    SIMULATED sessions, pairs mined, failed queries during a re-index under load."""
    sizes = LoopSizes.small() if small else LoopSizes()
    report = run_click_loop(settings, sizes, lambda m: click.echo(m, err=True))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str))
    click.echo(json.dumps(report, indent=None if as_json else 2, default=str))


@evaluate.command("compact")
@click.option("--gallery", default=10_000, show_default=True, help="Held-out gallery photos.")
@click.option("--real-shots", default=3000, show_default=True, help="SYNTHETIC shots of them.")
@click.option("--plain", default=1000, show_default=True, help="Plain photo queries.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("bench/results"))
@click.option("--json", "as_json", is_flag=True, help="One line of JSON.")
@click.pass_obj
def eval_compact(
    settings: Settings, gallery: int, real_shots: int, plain: int, out: Path, as_json: bool
) -> None:
    """Paragon, compatible, homogeneous and unadapted pairs on SYNTHETIC real shots and plain
    held-out photos, with each model's cost (MACs from the ONNX graph, batch-1 ms, img/s);
    writes compact.json and a PNG."""
    sizes = CompactSizes(gallery=gallery, real_shots=real_shots, plain=plain)
    report = evaluate_compact(settings.models_path, sizes, log=lambda m: click.echo(m, err=True))
    write_report(report, out)
    click.echo(json.dumps(report, indent=None if as_json else 2))


@evaluate.command("text")
@click.option("--small", is_flag=True, help="A quick run (160 products, 300 intents, 1 epoch).")
@click.option("--seeds", default=1, show_default=True, type=click.IntRange(1, 10),
              help="Runs at seeds 0..N-1 (catalogue, shoppers, training): each seed's figures, "
              "their mean and spread.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="One line of JSON.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("bench/results/text.json"))
@click.pass_obj
def eval_text(settings: Settings, small: bool, seeds: int, as_json: bool, out: Path) -> None:
    """Lexical, GRU, MiniLM and hybrid text search on held-out SIMULATED sessions in
    held-out wording (MRR, MAP, NDCG@10, P@50, R@50, gains beside Myntra's); writes
    text.json and a PNG."""
    sizes = TextEvalSizes.small() if small else TextEvalSizes()
    report = run_text_seeds(assembly.image_path(settings), sizes, seeds)
    write_text_report(report, out)
    click.echo(json.dumps(report, indent=None if as_json else 2))


@evaluate.command("modify")
@click.option("--small", is_flag=True, help="A quick run (30 references, 2 epochs).")
@click.option("--references", default=1000, show_default=True, help="SYNTHETIC references.")
@click.option("--distractors", default=1000, show_default=True, help="Random SYNTHETIC designs.")
@click.option("--json", "as_json", is_flag=True, help="One line of JSON.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("bench/results/modify.json"))
@click.pass_obj
def eval_modify(
    settings: Settings, small: bool, references: int, distractors: int, as_json: bool, out: Path
) -> None:
    """Image + text modifier search on SIMULATED triplets: the joint model against image
    only, text only and late fusion (Recall@10, NDCG@10 per kind of change and for unseen
    combinations, held-out and training wording); writes modify.json and a PNG."""
    sizes = ModifyEvalSizes.small() if small else ModifyEvalSizes(references, distractors)
    report = run_modify_eval(assembly.image_path(settings), sizes)
    write_modify_report(report, out)
    click.echo(json.dumps(report, indent=None if as_json else 2))


@evaluate.command("outfits")
@click.option("--small", is_flag=True, help="A quick run (250 items, 20 steps, 2 seeds).")
@click.option("--seeds", default=3, show_default=True, help="Splits and trainings per fraction.")
@click.option("--steps", default=OutfitEvalSizes.steps, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One line of JSON.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("bench/results/outfits.json"))
@click.pass_obj
def eval_outfits(
    settings: Settings, small: bool, seeds: int, steps: int, as_json: bool, out: Path
) -> None:
    """Outfit compatibility on SIMULATED outfits: supervised-only and semi-supervised models
    at 5/10/25/100 % of the labels against random and visual-similarity baselines
    (fill-in-the-blank accuracy and AUC on items never seen in training, mean and spread over
    seeds); writes outfits.json and a PNG."""
    sizes = OutfitEvalSizes.small() if small else OutfitEvalSizes(steps=steps, seeds=seeds)
    report = run_outfit_eval(assembly.image_path(settings), sizes)
    write_outfit_report(report, out)
    click.echo(json.dumps(report, indent=None if as_json else 2))
