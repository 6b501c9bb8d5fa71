"""Train the attribute tagger (processors/tagger.py) on features from the served image path,
calibrate its thresholds and the category fusion on a validation split, export it to ONNX.

Labels: Fashion-MNIST photos (real) teach the category only; SYNTHETIC garments teach every
model attribute (an attribute group that does not apply, such as a bag's neckline, is a true
negative). The loss is cross-entropy on the category plus binary cross-entropy on the
attributes, masked where a sample's group is unlabelled.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from processors.tagger import TAGGER_NAME, TaggerCard, fuse, knn_vote, tagger_path
from schemas.attributes import CATEGORY_KEYS, TAXONOMY, TAXONOMY_VERSION, Source

ATTRIBUTE_KEYS: tuple[str, ...] = tuple(
    a.key for a in TAXONOMY if a.source is Source.MODEL and a.group != "category"
)
ATTRIBUTE_GROUPS: tuple[str, ...] = tuple(dict.fromkeys(k.split(".")[0] for k in ATTRIBUTE_KEYS))
THRESHOLD_GRID = np.round(np.arange(0.05, 0.96, 0.05), 2)
ALPHA_GRID = np.round(np.arange(0.0, 1.01, 0.1), 2)
K_GRID = (5, 10, 20)


@dataclass
class LabelledSet:
    """Features and labels. ``known`` marks the attribute groups labelled for each sample."""

    vectors: np.ndarray  # (N, dim) L2-normalised embeddings
    colours: np.ndarray  # (N, COLOUR_VECTOR_DIM)
    category: np.ndarray  # (N,) index into CATEGORY_KEYS
    attributes: np.ndarray  # (N, len(ATTRIBUTE_KEYS)) 0/1
    known: np.ndarray  # (N, len(ATTRIBUTE_KEYS)) 0/1
    source: list[str] = field(default_factory=list)  # "fashion-mnist" or "synthetic"

    @property
    def features(self) -> np.ndarray:
        return np.concatenate([self.vectors, self.colours], axis=1).astype(np.float32)

    def subset(self, idx: np.ndarray) -> LabelledSet:
        return LabelledSet(
            self.vectors[idx],
            self.colours[idx],
            self.category[idx],
            self.attributes[idx],
            self.known[idx],
            [self.source[i] for i in idx],
        )


def label_rows(
    keys_per_sample: Sequence[Sequence[str]], labelled_groups: Sequence[Sequence[str]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(category index, attribute 0/1 matrix, known mask) from each sample's taxonomy keys."""
    position = {k: i for i, k in enumerate(ATTRIBUTE_KEYS)}
    n = len(keys_per_sample)
    category = np.full(n, -1, dtype=np.int64)
    attributes = np.zeros((n, len(ATTRIBUTE_KEYS)), dtype=np.float32)
    known = np.zeros_like(attributes)
    for i, (keys, groups) in enumerate(zip(keys_per_sample, labelled_groups, strict=True)):
        for key in keys:
            if key in CATEGORY_KEYS:
                category[i] = CATEGORY_KEYS.index(key)
            elif key in position:
                attributes[i, position[key]] = 1.0
        for j, key in enumerate(ATTRIBUTE_KEYS):
            known[i, j] = key.split(".")[0] in groups
    return category, attributes, known


def knn_votes(
    queries: np.ndarray,
    gallery: np.ndarray,
    labels: Sequence[str],
    k: int,
    exclude_self: bool = False,
) -> np.ndarray:
    """Search-alone category distributions: the same vote the worker takes over Milvus hits."""
    sims = queries @ gallery.T
    if exclude_self:
        np.fill_diagonal(sims, -np.inf)
    top = np.argsort(-sims, axis=1)[:, :k]
    out = np.zeros((len(queries), len(CATEGORY_KEYS)), dtype=np.float64)
    for i, row in enumerate(top):
        vote = knn_vote([(labels[j], float(sims[i, j])) for j in row], CATEGORY_KEYS)
        out[i] = vote if vote is not None else 1.0 / len(CATEGORY_KEYS)
    return out


def _network(in_dim: int, mean: np.ndarray, std: np.ndarray) -> Any:
    import torch
    from torch import nn

    class Tagger(nn.Module):
        mean: torch.Tensor
        std: torch.Tensor

        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mean", torch.from_numpy(mean))
            self.register_buffer("std", torch.from_numpy(std))
            self.trunk = nn.Sequential(nn.Linear(in_dim, 512), nn.ReLU(), nn.Dropout(0.3))
            self.category = nn.Linear(512, len(CATEGORY_KEYS))
            self.attributes = nn.Linear(512, len(ATTRIBUTE_KEYS))

        def logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            h = self.trunk((x - self.mean) / self.std)
            return self.category(h), self.attributes(h)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            c, a = self.logits(x)
            return torch.softmax(c, dim=1), torch.sigmoid(a)

    return Tagger()


def predict(net: Any, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import torch

    net.eval()
    with torch.no_grad():
        c, a = net(torch.from_numpy(features))
    return c.numpy(), a.numpy()


def fit(train: LabelledSet, *, epochs: int = 40, seed: int = 0) -> Any:
    import torch
    from torch.nn import functional as F  # noqa: N812

    torch.manual_seed(seed)
    x = train.features
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-4
    net = _network(x.shape[1], mean.astype(np.float32), std.astype(np.float32))
    xt = torch.from_numpy(x)
    ct = torch.from_numpy(train.category)
    at, kt = torch.from_numpy(train.attributes), torch.from_numpy(train.known)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-3)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        net.train()
        order = torch.randperm(len(x), generator=gen)
        for start in range(0, len(x), 256):
            idx = order[start : start + 256]
            c_logit, a_logit = net.logits(xt[idx])
            has_c = ct[idx] >= 0
            loss_c = F.cross_entropy(c_logit[has_c], ct[idx][has_c]) if has_c.any() else 0.0
            bce = F.binary_cross_entropy_with_logits(a_logit, at[idx], reduction="none")
            loss_a = (bce * kt[idx]).sum() / kt[idx].sum().clamp(min=1.0)
            loss: Any = loss_c + loss_a
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net


def calibrate_thresholds(probs: np.ndarray, labels: np.ndarray, known: np.ndarray) -> list[float]:
    """Per attribute, the threshold with the best F1 on the validation rows that label it."""
    out = []
    for j in range(probs.shape[1]):
        rows = known[:, j] > 0
        y, p = labels[rows, j] > 0, probs[rows, j]
        best, best_f1 = 0.5, -1.0
        if y.any():
            for t in THRESHOLD_GRID:
                pred = p >= t
                tp = float((pred & y).sum())
                f1 = 2 * tp / max(1.0, float(pred.sum() + y.sum()))
                if f1 > best_f1:
                    best, best_f1 = float(t), f1
        out.append(best)
    return out


def choose_fusion(
    model_probs: np.ndarray, votes_by_k: dict[int, np.ndarray], truth: np.ndarray
) -> tuple[float, int]:
    """(alpha, k) with the best validation accuracy; ties go to the larger alpha."""
    best = (-1.0, 1.0, K_GRID[0])
    for k, votes in votes_by_k.items():
        for alpha in ALPHA_GRID:
            fused = np.stack(
                [fuse(m, v, float(alpha)) for m, v in zip(model_probs, votes, strict=True)]
            )
            acc = float((fused.argmax(1) == truth).mean())
            if (acc, alpha) > (best[0], best[1]):
                best = (acc, float(alpha), k)
    return best[1], best[2]


def export(
    net: Any,
    models_dir: Path,
    *,
    thresholds: list[float],
    alpha: float,
    k: int,
    embedding_model: str,
    detector_model: str,
    example: np.ndarray,
) -> Path:
    import onnxruntime as ort
    import torch

    net.eval()
    models_dir.mkdir(parents=True, exist_ok=True)
    out = tagger_path(models_dir)
    tmp = out.with_suffix(".onnx.tmp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            net,
            (torch.from_numpy(example),),
            str(tmp),
            input_names=["features"],
            output_names=["category", "attributes"],
            dynamic_axes={n: {0: "batch"} for n in ("features", "category", "attributes")},
            opset_version=17,
            dynamo=False,
        )
    expected = predict(net, example)
    got = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"]).run(
        None, {"features": example}
    )
    if max(float(np.abs(g - e).max()) for g, e in zip(got, expected, strict=True)) > 1e-4:
        raise RuntimeError("tagger ONNX export differs from torch")
    tmp.replace(out)
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    TaggerCard(
        model_version=f"{TAGGER_NAME}-v{TAXONOMY_VERSION}-{digest[:8]}",
        category_keys=list(CATEGORY_KEYS),
        attribute_keys=list(ATTRIBUTE_KEYS),
        thresholds=thresholds,
        fusion_alpha=alpha,
        fusion_k=k,
        input_dim=int(example.shape[1]),
        taxonomy_version=TAXONOMY_VERSION,
        embedding_model=embedding_model,
        detector_model=detector_model,
        sha256=digest,
    ).write(out.with_suffix(".json"))
    return out


def train_tagger(
    train: LabelledSet,
    val: LabelledSet,
    models_dir: Path,
    *,
    embedding_model: str,
    detector_model: str,
    epochs: int = 40,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> Path:
    net = fit(train, epochs=epochs, seed=seed)
    category_probs, attribute_probs = predict(net, val.features)
    thresholds = calibrate_thresholds(attribute_probs, val.attributes, val.known)
    labels = [CATEGORY_KEYS[c] for c in train.category]
    votes = {k: knn_votes(val.vectors, train.vectors, labels, k) for k in K_GRID}
    alpha, k = choose_fusion(category_probs, votes, val.category)
    model_acc = float((category_probs.argmax(1) == val.category).mean())
    log(f"tagger: validation category accuracy {model_acc:.4f}; fusion alpha={alpha} k={k}")
    return export(
        net,
        models_dir,
        thresholds=thresholds,
        alpha=alpha,
        k=k,
        embedding_model=embedding_model,
        detector_model=detector_model,
        example=val.features[:4],
    )
