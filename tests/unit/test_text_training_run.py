"""`stylestream train text`'s job on the in-memory store: text pairs picked from the mined
ones, held-out sessions judged, both towers exported and reloadable."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from processors.text_encoder import TextEncoder
from stores.memory import MemoryRepository
from stores.rows import encode_base
from training.click_head import Split
from training.text_model import TextTrainConfig
from training.text_run import run_text_training, text_clicks

COLOURS = ("red", "blue", "green")


def product(i: int) -> dict[str, Any]:
    now = datetime.now(UTC)
    colour = COLOURS[i % 3]
    return {
        "product_id": f"p{i}",
        "version": 1,
        "title": f"{colour} dress",
        "search_text": f"{colour} dress",
        "category": "dress",
        "price": 10,
        "currency": "EUR",
        "image_ref": "x",
        "synthetic_fields": ["title"],
        "roi_box": [0, 0, 1, 1],
        "image_width": 1,
        "image_height": 1,
        "primary_colour": colour,
        "colour_fractions": {colour: 1.0},
        "colour_vector": [0.0],
        "model_version": "m",
        "event_time": now,
        "indexed_at": now,
        "base_embedding": encode_base(np.random.default_rng(i).normal(size=8)),
        "attributes": [{"attribute_key": f"colour.{colour}", "confidence": 0.9, "source": "model"}],
    }


def pair(n: int) -> dict[str, Any]:
    i = n % 12
    words = {"red": "crimson frock", "blue": "azure frock", "green": "emerald frock"}
    return {
        "query": {"kind": "text", "text": words[COLOURS[i % 3]]},
        "positive": f"p{i}",
        "hard_negatives": [f"p{(i + 1) % 12}"],
        "random_negatives": [f"p{(i + 2) % 12}"],
        "session_id": f"s{n}",
    }


def test_text_pairs_train_judge_and_export(tmp_path: Path) -> None:
    repo = MemoryRepository()
    repo.apply([product(i) for i in range(12)], [])
    image_pair = {**pair(0), "query": {"kind": "image", "image_sha256": "0" * 64}}
    rows = [pair(n) for n in range(120)] + [image_pair]
    clicks, other = text_clicks(rows)
    assert len(clicks) == 120 and other == 1
    config = TextTrainConfig(kind="gru", epochs=4, batch=16, frequent_words=500)
    report = run_text_training(repo, rows, tmp_path, config, Split(25), "m")
    assert report["pairs"] == {
        "text": 120,
        "other_queries": 1,
        "trained_on": report["pairs"]["trained_on"],
    }
    held = report["held_out"]
    assert (
        0 < held["clicks_judged"] < 120 and report["sessions"]["held_out"] == held["clicks_judged"]
    )
    assert held["mrr_model"] > held["mrr_served"]  # the clicked product was served second
    version = report["model_version"]
    assert version.startswith("text-gru-")
    assert report["lineage"]["base_model_version"] == "m"
    assert report["lineage"]["products"] == 12 and report["lineage"]["pairs"]["text"] == 120
    assert json.loads((tmp_path / f"{version}.json").read_text()) == report
    encoder = TextEncoder(
        (tmp_path / f"{version}.query.onnx").read_bytes(),
        (tmp_path / f"{version}.product.onnx").read_bytes(),
        version,
    )
    assert encoder.queries(["crimson frock"]).shape == (1, 128)
