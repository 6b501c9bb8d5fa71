"""Fashion attributes from the image: a multi-label tagger over the embedding + colour features,
and the category by model + search fusion.

- The tagger (trained by training/tagger.py, served by ONNX Runtime) gives category
  probabilities (softmax over the taxonomy's categories) and a probability per attribute
  (sigmoid); an attribute is kept when it clears its own threshold, calibrated for F1 on a
  validation split; groups that do not describe the category's department are dropped (no
  sleeves on a sneaker), and an exclusive group (sleeve length, pattern) keeps its likeliest.
- Fusion: ``p ~ p_model^alpha * (p_search + 0.001)^(1 - alpha)``, where ``p_search`` is the
  similarity-weighted vote of the nearest indexed products' catalogue categories; ``alpha``
  and the neighbour count were chosen on the validation split and live in the card. (Measured
  against the linear mix ``alpha * p_model + (1 - alpha) * p_search``: within 0.3 points,
  but the log-linear one never fell below the model alone; NOTES.md.)
- The department follows from the fused category (derived); catalogue attributes from the
  event are kept with confidence 1.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from processors.embedding import onnx_session
from schemas.attributes import GROUP_BY_KEY, Source, applies, category_key, department_of

TAGGER_NAME = "attribute-tagger"
VOTE_FLOOR = 1e-3
MIN_COLOUR_SHARE = 0.05


@dataclass(frozen=True)
class TaggerCard:
    model_version: str
    category_keys: list[str]
    attribute_keys: list[str]
    thresholds: list[float]
    fusion_alpha: float
    fusion_k: int
    input_dim: int
    taxonomy_version: int
    embedding_model: str
    detector_model: str
    sha256: str

    @classmethod
    def read(cls, path: Path) -> TaggerCard:
        return cls(**json.loads(path.read_text()))

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2))


def tagger_path(models_dir: Path) -> Path:
    return models_dir / f"{TAGGER_NAME}.onnx"


@dataclass(frozen=True)
class AttributeTag:
    key: str
    confidence: float
    source: Source


class NeighbourLookup(Protocol):
    """The nearest indexed products' catalogue categories and similarities, per vector;
    ``own_ids[i]`` is vector i's product, never among its neighbours (no voting for itself)."""

    def neighbours(
        self, vectors: np.ndarray, k: int, own_ids: Sequence[str]
    ) -> list[list[tuple[str, float]]]: ...


@dataclass(frozen=True)
class Prediction:
    category_probs: np.ndarray  # over card.category_keys
    attribute_probs: np.ndarray  # over card.attribute_keys


def knn_vote(
    neighbours: Sequence[tuple[str, float]], category_keys: Sequence[str]
) -> np.ndarray | None:
    """Similarity-weighted share of each category among neighbours; None if none is labelled."""
    position = {k: i for i, k in enumerate(category_keys)}
    votes = np.zeros(len(category_keys), dtype=np.float64)
    for label, similarity in neighbours:
        key = category_key(label)
        if key is not None and key in position:
            votes[position[key]] += max(float(similarity), 0.0)
    total = votes.sum()
    return votes / total if total > 0 else None


def fuse(model_probs: np.ndarray, vote: np.ndarray | None, alpha: float) -> np.ndarray:
    """Log-linear (a product of experts): agreement counts, and a category the neighbours
    never show is damped, not vetoed (``VOTE_FLOOR``)."""
    if vote is None:
        return model_probs
    logits = alpha * np.log(model_probs + 1e-9) + (1.0 - alpha) * np.log(vote + VOTE_FLOOR)
    weights = np.exp(logits - logits.max())
    fused: np.ndarray = weights / weights.sum()
    return fused


class OnnxTagger:
    def __init__(self, model_path: Path, threads: int = 0) -> None:
        if not model_path.exists():
            raise FileNotFoundError(
                f"{model_path} is missing: run `stylestream train attributes` first"
            )
        self.card = TaggerCard.read(model_path.with_suffix(".json"))
        self._session = onnx_session(model_path, threads)
        self._thresholds = np.asarray(self.card.thresholds, dtype=np.float32)

    @property
    def model_version(self) -> str:
        return self.card.model_version

    def predict(self, embeddings: np.ndarray, colour_vectors: np.ndarray) -> list[Prediction]:
        if len(embeddings) == 0:
            return []
        features = np.concatenate([embeddings, colour_vectors], axis=1).astype(np.float32)
        category, attributes = self._session.run(None, {"features": features})
        return [Prediction(c, a) for c, a in zip(category, attributes, strict=True)]

    def tags(
        self,
        prediction: Prediction,
        vote: np.ndarray | None,
        catalogue: Sequence[str] = (),
        colour_shares: Mapping[str, float] | None = None,
    ) -> tuple[str, float, list[AttributeTag]]:
        """(fused category key, its probability, every attribute to store for the product).
        With ``colour_shares`` (measured in the item's region), a predicted colour needs at
        least ``MIN_COLOUR_SHARE`` of the item's pixels: the measurement vetoes colours the
        model imagines (a grey photo is not navy)."""
        fused = fuse(prediction.category_probs, vote, self.card.fusion_alpha)
        best = int(np.argmax(fused))
        category, confidence = self.card.category_keys[best], float(fused[best])
        out = {category: AttributeTag(category, confidence, Source.MODEL)}
        department = department_of(category)
        if department is not None:
            out[department] = AttributeTag(department, confidence, Source.DERIVED)
        keep = prediction.attribute_probs >= self._thresholds
        best_in_group: dict[str, tuple[float, str]] = {}
        for i in np.flatnonzero(keep):
            key = self.card.attribute_keys[int(i)]
            group = key.split(".", 1)[0]
            if not applies(group, department):
                continue
            value = key.split(".", 1)[1]
            if (
                group == "colour"
                and colour_shares is not None
                and colour_shares.get(value, 0.0) < MIN_COLOUR_SHARE
            ):
                continue
            p = float(prediction.attribute_probs[i])
            if GROUP_BY_KEY[group].exclusive:  # one sleeve length, the likeliest
                if p > best_in_group.get(group, (-1.0, ""))[0]:
                    best_in_group[group] = (p, key)
                continue
            out[key] = AttributeTag(key, p, Source.MODEL)
        for p, key in best_in_group.values():
            out[key] = AttributeTag(key, p, Source.MODEL)
        for key in catalogue:
            out[key] = AttributeTag(key, 1.0, Source.CATALOGUE)
        return category, confidence, sorted(out.values(), key=lambda t: t.key)
