"""`stylestream train embedding`: mined pairs from Postgres -> a head -> the model registry.

Held-out sessions (a keyed hash of the session id, ``Split``) never train: they pick the epoch
and give the registered metrics, base model vs trained head on the same pairs. Products clicked
in one impression become co-click pairs (relevant to one query, so to each other). Lineage
records which pairs (count, time range, a digest of their ids) and which base model.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from stores.base import MetadataRepository
from stores.registry import RegisteredModel, ServingRegistry
from stores.rows import decode_base, decode_base64
from training.embedding_head import (
    HeadConfig,
    Triplets,
    export_onnx,
    fit_calibration,
    fit_head,
    pair_metrics,
)

HEADS_DIR = "embedding-heads"


@dataclass(frozen=True)
class Split:
    """Which sessions are held out. Keyed with a secret (STYLESTREAM_SPLIT_KEY, an HMAC) so that
    nobody who reports clicks can pick session ids that land in, or stay out of, the held-out
    part (poisoned clicks steered around the metrics); unkeyed for simulations."""

    percent: int = 20
    key: bytes = field(default=b"", repr=False)

    def held_out(self, session_id: str) -> bool:
        data = session_id.encode()
        digest = hmac.new(self.key, data, "sha256") if self.key else hashlib.sha256(data)
        return int(digest.hexdigest()[:8], 16) % 100 < self.percent


@dataclass
class PairSet:
    train: Triplets
    held_out: Triplets
    used: list[str]  # pair ids
    skipped: dict[str, int]
    sessions: tuple[int, int]  # train, held out
    mined: tuple[datetime | None, datetime | None]


def _anchor(query: Mapping[str, Any], rows: Mapping[str, int], gallery: np.ndarray) -> Any:
    if query.get("kind") == "image" and query.get("embedding_f16"):
        return decode_base64(query["embedding_f16"])
    if query.get("kind") == "product" and query.get("product_id") in rows:
        return gallery[rows[query["product_id"]]]
    return None


def build_pairs(
    pairs: Iterable[Mapping[str, Any]],
    product_ids: list[str],
    gallery: np.ndarray,
    split: Split = Split(),
) -> PairSet:
    rows = {pid: i for i, pid in enumerate(product_ids)}
    kept: list[tuple[bool, np.ndarray, int, list[int], list[float]]] = []
    clicked: dict[tuple[bool, str], list[int]] = {}  # (held out, impression) -> gallery rows
    used: list[str] = []
    skipped = {"no_query_embedding": 0, "unknown_product": 0}
    sessions: dict[bool, set[str]] = {True: set(), False: set()}
    first: datetime | None = None
    last: datetime | None = None
    for p in pairs:
        anchor = _anchor(p["query"], rows, gallery)
        if anchor is None or len(anchor) != gallery.shape[1]:
            skipped["no_query_embedding"] += 1
            continue
        if p["positive"] not in rows:
            skipped["unknown_product"] += 1
            continue
        positions = list(p.get("hard_negative_positions") or [])
        hard = list(p["hard_negatives"])
        positions += [1] * (len(hard) - len(positions))  # pairs mined before positions existed
        negatives = [
            (rows[n], 1.0 / max(pos, 1))
            for n, pos in zip(hard, positions[: len(hard)], strict=True)
            if n in rows
        ]
        negatives += [(rows[n], 1.0) for n in p["random_negatives"] if n in rows]
        if not negatives:
            continue
        out = split.held_out(p["session_id"])
        sessions[out].add(p["session_id"])
        kept.append(
            (out, anchor, rows[p["positive"]], [n for n, _ in negatives], [w for _, w in negatives])
        )
        used.append(p["pair_id"])
        if p.get("impression_id"):
            clicked.setdefault((out, p["impression_id"]), []).append(rows[p["positive"]])
        mined = p.get("mined_at")
        if mined is not None:
            first = mined if first is None else min(first, mined)
            last = mined if last is None else max(last, mined)
    width = max((len(k[3]) for k in kept), default=1)

    def triplets(part: bool) -> Triplets:
        chosen = [k for k in kept if k[0] is part]
        negatives = np.zeros((len(chosen), width), dtype=np.int64)
        weights = np.zeros((len(chosen), width), dtype=np.float32)
        for i, (_, _, _, n, w) in enumerate(chosen):
            negatives[i, : len(n)] = n
            weights[i, : len(w)] = w
        anchors = np.asarray([k[1] for k in chosen], dtype=np.float32).reshape(
            len(chosen), gallery.shape[1]
        )
        positive = np.asarray([k[2] for k in chosen], dtype=np.int64)
        co = [
            (a, b)
            for (side, _), together in clicked.items()
            if side is part
            for a in together
            for b in together
            if a != b
        ]
        coclicks = np.asarray(co, dtype=np.int64).reshape(len(co), 2)
        return Triplets(anchors, gallery, positive, negatives, weights, coclicks)

    return PairSet(
        triplets(False),
        triplets(True),
        used,
        skipped,
        (len(sessions[False]), len(sessions[True])),
        (first, last),
    )


def load_gallery(repo: MetadataRepository) -> tuple[list[str], np.ndarray, set[str]]:
    """Every product's stored base embedding, and the base model versions they came from."""
    ids: list[str] = []
    vectors: list[np.ndarray] = []
    bases = set(repo.base_versions())
    if len(bases) != 1:  # mixed spaces (maybe of mixed widths): no gallery to stack
        return ids, np.zeros((0, 0), np.float32), bases
    for batch in repo.product_batches():
        for row in batch:
            if row["base_embedding"] is not None:
                ids.append(row["product_id"])
                vectors.append(decode_base(row["base_embedding"]))
    gallery = np.asarray(vectors, dtype=np.float32)
    return ids, gallery, bases


def new_version(now: datetime, digest: str) -> str:
    return f"click-head-{now:%Y%m%d-%H%M%S}-{digest[:8]}"


def train_embedding(
    registry: ServingRegistry,
    repo: MetadataRepository,
    pairs: Iterable[Mapping[str, Any]],
    models_dir: Path,
    config: HeadConfig | None = None,
    split: Split = Split(),
    min_pairs: int = 50,
) -> RegisteredModel:
    ids, gallery, bases = load_gallery(repo)
    if len(bases) != 1:
        raise RuntimeError(
            f"products carry base embeddings from {sorted(bases) or 'no model'}: "
            "one base model is needed (replay products to re-embed them)"
        )
    data = build_pairs(pairs, ids, gallery, split)
    if len(data.train) < min_pairs or len(data.held_out) == 0:
        raise RuntimeError(
            f"{len(data.train)} training and {len(data.held_out)} held-out pairs: at least "
            f"{min_pairs} training pairs and some held-out sessions are needed (simulate or "
            "collect more clicks)"
        )
    config = config or HeadConfig()
    fit = fit_head(data.train, data.held_out, config)
    digest = hashlib.sha256("\n".join(sorted(data.used)).encode()).hexdigest()
    now = datetime.now(UTC)
    version = new_version(now, digest)
    artifact = export_onnx(fit.weight)
    calibration = fit_calibration(fit.weight, data.train.anchors, gallery, config.calibration_top)
    metrics = {
        "held_out_base": pair_metrics(None, data.held_out),
        "held_out_trained": pair_metrics(fit.weight, data.held_out),
        "best_epoch": fit.best_epoch,
        "history": fit.history,
    }
    base_version = next(iter(bases))
    lineage = {
        "base_model_version": base_version,
        "pairs": len(data.used),
        "pairs_sha256": digest,
        "train_pairs": len(data.train),
        "train_coclicks": len(data.train.coclicks),
        "held_out_pairs": len(data.held_out),
        "train_sessions": data.sessions[0],
        "held_out_sessions": data.sessions[1],
        "held_out_percent": split.percent,
        "held_out_split": "keyed" if split.key else "unkeyed",
        "mined_from": data.mined[0].isoformat() if data.mined[0] else None,
        "mined_until": data.mined[1].isoformat() if data.mined[1] else None,
        "skipped": data.skipped,
        "gallery_products": len(ids),
    }
    model = RegisteredModel(
        model_version=version,
        base_model_version=base_version,
        dim=int(fit.weight.shape[0]),
        artifact=artifact,
        artifact_sha256=hashlib.sha256(artifact).hexdigest(),
        params=config.as_dict(),
        metrics=metrics,
        lineage=lineage,
        score_calibration=calibration,
    )
    registry.register(model)
    out = models_dir / HEADS_DIR
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{version}.onnx").write_bytes(artifact)
    card = {k: v for k, v in model.__dict__.items() if k not in ("artifact", "created_at")}
    (out / f"{version}.json").write_text(json.dumps(card, indent=2, default=str))
    return model
