"""Embedding heads served by ONNX Runtime: a trained map from the base embedding to the space a
collection is indexed in. The artifact is the ONNX bytes from the model registry, so any
worker or API replica can load it without a shared volume."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort


class OnnxHead:
    def __init__(self, model_version: str, artifact: bytes, dim: int) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # a (n, d) @ (d, k) product: threads cost more
        self._session = ort.InferenceSession(artifact, options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        self._version = model_version
        self._dim = dim

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
