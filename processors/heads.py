"""Embedding heads served by ONNX Runtime: a trained map from the base embedding to the space a
collection is indexed in. The artifact is the ONNX bytes from the model registry, so any
worker or API replica can load it without a shared volume. Its score calibration maps the
head's cosines onto the base model's scale (training/embedding_head.fit_calibration)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnxruntime as ort


class OnnxHead:
    def __init__(
        self,
        model_version: str,
        artifact: bytes,
        dim: int,
        calibration: Mapping[str, float] | None = None,
    ) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # a (n, d) @ (d, k) product: threads cost more
        self._session = ort.InferenceSession(artifact, options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        self._version = model_version
        self._dim = dim
        self._scale = float((calibration or {}).get("scale", 1.0))
        self._shift = float((calibration or {}).get("shift", 0.0))

    @property
    def model_version(self) -> str:
        return self._version

    @property
    def dim(self) -> int:
        return self._dim

    def project(self, base: np.ndarray) -> np.ndarray:
        out: np.ndarray = self._session.run(
            None, {self._input: np.asarray(base, dtype=np.float32)}
        )[0]
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return np.asarray(out / np.maximum(norms, 1e-12), dtype=np.float32)

    def score(self, cosine: float) -> float:
        return self._shift + self._scale * cosine
