"""A trained compatibility model to one ONNX graph: an item's joined features in, its unit
embedding out; the pair head (role-pair masks, pair network, temperature), the roles' order and
the feature layout ride in the graph's metadata, so an API replica needs the bytes alone.
Checked against torch before it is returned."""

from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from processors.modify import LAYOUT
from schemas.outfits import ROLES
from training.outfit_model import TrainedCompat, TypeAwareCompat

PARITY_ATOL = 1e-4


class _Served(nn.Module):
    def __init__(self, model: TypeAwareCompat) -> None:
        super().__init__()
        self.model = model

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.model.embed(features)


def export_compat(trained: TrainedCompat, probe: np.ndarray, meta: dict[str, str]) -> bytes:
    """``probe`` (a few items' joined features) checks the graph; ``meta``: base_dim,
    profile_weight, base_model_version."""
    module = _Served(trained.model).eval()
    example = torch.from_numpy(probe.astype(np.float32))
    with warnings.catch_warnings(), tempfile.TemporaryDirectory() as tmp:
        warnings.simplefilter("ignore")
        path = Path(tmp) / "compat.onnx"
        torch.onnx.export(
            module,
            (example,),
            str(path),
            input_names=["features"],
            output_names=["embedding"],
            dynamic_axes={"features": {0: "batch"}, "embedding": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
        graph = onnx.load(str(path))
    metadata = {
        **meta,
        "layout": LAYOUT,
        "roles": json.dumps(list(ROLES)),
        "head": trained.head().to_json(),
    }
    for key, value in metadata.items():
        graph.metadata_props.add(key=key, value=value)
    artifact: bytes = graph.SerializeToString()
    with torch.no_grad():
        expected = module(example).numpy()
    session = ort.InferenceSession(artifact, providers=["CPUExecutionProvider"])
    got = session.run(None, {"features": probe.astype(np.float32)})[0]
    err = float(np.abs(got - expected).max())
    if err > PARITY_ATOL:
        raise RuntimeError(f"ONNX compatibility model drifts from torch by {err:.2e}")
    return artifact
