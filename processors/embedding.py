"""Image embeddings served by ONNX Runtime from an exported model and its sidecar card.

The card (``<model>.json``) carries what serving must agree on with export: input size,
normalisation, output dimension and the model version written beside every vector.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from PIL import Image

BASE_MODEL_NAME = "efficientnet-lite0-imagenet-gem3"


@dataclass(frozen=True)
class ModelCard:
    model_version: str
    image_size: int
    dim: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    sha256: str

    @classmethod
    def read(cls, path: Path) -> ModelCard:
        return cls.from_dict(json.loads(path.read_text()))

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ModelCard:
        return cls(
            model_version=raw["model_version"],
            image_size=int(raw["image_size"]),
            dim=int(raw["dim"]),
            mean=tuple(raw["mean"]),
            std=tuple(raw["std"]),
            sha256=raw["sha256"],
        )

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.__dict__, indent=2))


def base_model_path(models_dir: Path, image_size: int) -> Path:
    return models_dir / f"{BASE_MODEL_NAME}-{image_size}px.onnx"


def card_path(model_path: Path) -> Path:
    return model_path.with_suffix(".json")


def preprocess(images: Sequence[np.ndarray], card: ModelCard) -> np.ndarray:
    """RGB uint8 arrays of any size -> normalised NCHW float32 at the model's input size."""
    size = card.image_size
    batch = np.empty((len(images), 3, size, size), dtype=np.float32)
    mean = np.asarray(card.mean, dtype=np.float32)[:, None, None]
    std = np.asarray(card.std, dtype=np.float32)[:, None, None]
    for i, rgb in enumerate(images):
        resized = Image.fromarray(rgb).resize((size, size), Image.Resampling.BILINEAR)
        chw = np.asarray(resized, dtype=np.float32).transpose(2, 0, 1) / 255.0
        batch[i] = (chw - mean) / std
    return batch


def onnx_session(model: Path | bytes, threads: int = 0) -> ort.InferenceSession:
    """A CPU ONNX Runtime session (``threads`` 0: the runtime's default) from a file or the
    model's bytes (a registry artifact)."""
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


class OnnxEmbedder:
    """L2-normalised embeddings, computed in batches of ``batch_size``."""

    def __init__(self, model_path: Path, batch_size: int = 64, threads: int = 0) -> None:
        if not model_path.exists():
            raise FileNotFoundError(
                f"{model_path} is missing: run `stylestream model export` first"
            )
        self.card = ModelCard.read(card_path(model_path))
        self._session = onnx_session(model_path, threads)
        self._input = self._session.get_inputs()[0].name
        self.batch_size = batch_size

    @classmethod
    def from_artifact(
        cls, artifact: bytes, card: ModelCard, batch_size: int = 64, threads: int = 0
    ) -> OnnxEmbedder:
        """An embedder from registry bytes (any replica loads it without a shared volume)."""
        embedder = cls.__new__(cls)
        embedder.card = card
        embedder._session = onnx_session(artifact, threads)
        embedder._input = embedder._session.get_inputs()[0].name
        embedder.batch_size = batch_size
        return embedder

    @property
    def dim(self) -> int:
        return self.card.dim

    @property
    def model_version(self) -> str:
        return self.card.model_version

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        out = np.empty((len(images), self.dim), dtype=np.float32)
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            feats = self._session.run(None, {self._input: preprocess(chunk, self.card)})[0]
            norms = np.linalg.norm(feats, axis=1, keepdims=True)
            out[start : start + len(chunk)] = feats / np.maximum(norms, 1e-12)
        return out
