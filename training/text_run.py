"""``stylestream train text``: a text model trained on the click-mined pairs of text queries in
Postgres, judged on held-out sessions, exported to ONNX (training/text_export.py).

Held-out judgement: each held-out click's page (the clicked product, the ones skipped above it,
and the sampled negatives) reordered by the model, against the order that was served: the
clicked product's reciprocal rank, both ways.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stores.base import MetadataRepository
from stores.registry import ServingRegistry, TextModel
from stores.rows import embedded_in
from training.click_head import Split
from training.text_export import export_text_model
from training.text_model import ProductTable, TextPairs, TextTrainConfig, train_text_model


@dataclass(frozen=True)
class TextClick:
    text: str
    positive: str
    skipped: list[str]
    sampled: list[str]
    session_id: str
    clicked_at: str | None = None


def text_clicks(rows: Iterable[Mapping[str, Any]]) -> tuple[list[TextClick], int]:
    """The pairs of text queries (stored rows of ``training_pairs``), and how many others."""
    clicks, other = [], 0
    for row in rows:
        query = row["query"]
        if query.get("kind") != "text" or not query.get("text"):
            other += 1
            continue
        clicks.append(
            TextClick(
                str(query["text"]),
                str(row["positive"]),
                [str(x) for x in row["hard_negatives"]],
                [str(x) for x in row["random_negatives"]],
                str(row["session_id"]),
                row["clicked_at"].isoformat() if row.get("clicked_at") else None,
            )
        )
    return clicks, other


def _table(repo: MetadataRepository, clicks: list[TextClick], base: str) -> ProductTable:
    """The clicked and shown products whose stored image embedding is of ``base`` ("": any)."""
    ids = sorted({p for c in clicks for p in (c.positive, *c.skipped, *c.sampled)})
    products = repo.get_products(ids)
    attributes = repo.get_attributes(list(products))
    rows = [
        {**products[p], "attributes": attributes.get(p, [])}
        for p in ids
        if p in products and embedded_in(products[p], base)
    ]
    return ProductTable.from_rows(rows)


def _reciprocal_ranks(
    clicks: list[TextClick], table: ProductTable, queries: np.ndarray, products: np.ndarray
) -> tuple[float, float, int]:
    """Mean reciprocal rank of the clicked product on its own page: as served, as the model
    reorders it; and how many clicks were judged."""
    rows = table.row_of()
    served, model, n = 0.0, 0.0, 0
    for i, c in enumerate(clicks):
        page = [p for p in dict.fromkeys([*c.skipped, c.positive, *c.sampled]) if p in rows]
        if c.positive not in rows or len(page) < 2:
            continue
        scores = products[[rows[p] for p in page]] @ queries[i]
        better = int((scores > scores[page.index(c.positive)]).sum())
        model += 1.0 / (better + 1)
        served += 1.0 / (len([p for p in c.skipped if p in rows]) + 1)
        n += 1
    return (served / n, model / n, n) if n else (0.0, 0.0, 0)


def run_text_training(
    repo: MetadataRepository,
    pair_rows: Iterable[Mapping[str, Any]],
    out_dir: Path,
    config: TextTrainConfig,
    split: Split,
    base_model_version: str,
    registry: ServingRegistry | None = None,
) -> dict[str, Any]:
    """``base_model_version``: the image model whose stored embeddings the product tower
    reads (products embedded by another are left out); ``registry``: where the model is
    registered with its lineage (None: files only)."""
    clicks, other = text_clicks(pair_rows)
    table = _table(repo, clicks, base_model_version)
    train = [c for c in clicks if not split.held_out(c.session_id)]
    held = [c for c in clicks if split.held_out(c.session_id)]
    pairs = TextPairs.from_mined([(c.text, c.positive, c.skipped) for c in train], table)
    model = train_text_model(pairs, table, config)
    served, ranked, judged = _reciprocal_ranks(
        held, table, model.encode_queries([c.text for c in held]), model.encode_products(table)
    )
    probe = table.texts[:4]
    artifacts = export_text_model(model, probe, table.dense[: len(probe)])
    digest = TextModel.digest(artifacts.query, artifacts.product)
    version = f"text-{artifacts.kind}-{digest[:12]}"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{version}.query.onnx").write_bytes(artifacts.query)
    (out_dir / f"{version}.product.onnx").write_bytes(artifacts.product)
    report: dict[str, Any] = {
        "model_version": version,
        "kind": artifacts.kind,
        "dim": artifacts.dim,
        "config": asdict(config),
        "pairs": {"text": len(clicks), "other_queries": other, "trained_on": len(pairs)},
        "sessions": {
            "train": len({c.session_id for c in train}),
            "held_out": len({c.session_id for c in held}),
        },
        "held_out": {
            "clicks_judged": judged,
            "mrr_served": round(served, 4),
            "mrr_model": round(ranked, 4),
        },
        "loss_by_epoch": [round(x, 4) for x in model.history],
        "files": [f"{version}.query.onnx", f"{version}.product.onnx"],
    }
    clicked = sorted(c.clicked_at for c in clicks if c.clicked_at)
    report["lineage"] = {
        "base_model_version": base_model_version,
        "pairs": report["pairs"],
        "sessions": report["sessions"],
        "held_out_percent": split.percent,
        "held_out_split": "keyed" if split.key else "unkeyed",
        "clicked_from": clicked[0] if clicked else None,
        "clicked_until": clicked[-1] if clicked else None,
        "products": len(table.ids),
    }
    if registry is not None:
        registry.register_text_model(
            TextModel(
                version,
                artifacts.kind,
                base_model_version,
                artifacts.dim,
                artifacts.query,
                artifacts.product,
                digest,
                params=report["config"],
                metrics={"held_out": report["held_out"], "loss_by_epoch": report["loss_by_epoch"]},
                lineage=report["lineage"],
            )
        )
        report["registered"] = version
    (out_dir / f"{version}.json").write_text(json.dumps(report, indent=2) + "\n")
    return report
