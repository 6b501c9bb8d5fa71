"""A trained joint modifier model to one ONNX graph: MiniLM's sentence vector of the modifier
words and the joint network together, so an API replica needs the bytes alone (the vocabulary,
the base dimension and the profile weight ride in the graph's metadata). Checked against torch
before it is returned."""

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
from training.modify_model import JointModifier, SentenceEncoder

PARITY_ATOL = 1e-4


class _Served(nn.Module):
    def __init__(self, encoder: SentenceEncoder, joint: JointModifier) -> None:
        super().__init__()
        self.minilm = encoder.model
        self.joint = joint

    def forward(
        self, ids: torch.Tensor, mask: torch.Tensor, reference: torch.Tensor
    ) -> torch.Tensor:
        text = nn.functional.normalize(self.minilm(ids, mask), dim=-1)
        out: torch.Tensor = self.joint(reference, text)
        return out


def export_modifier(
    joint: JointModifier,
    encoder: SentenceEncoder,
    probe: list[str],
    references: np.ndarray,
    meta: dict[str, str],
) -> bytes:
    """``probe`` texts and their ``references`` (joined features) check the graph;
    ``meta``: base_dim, profile_weight, base_model_version."""
    module = _Served(encoder, joint).eval()
    ids, mask = encoder.pieces.batch(probe)
    feeds = {"ids": ids, "mask": mask, "reference": references.astype(np.float32)}
    example = tuple(torch.from_numpy(v) for v in feeds.values())
    with warnings.catch_warnings(), tempfile.TemporaryDirectory() as tmp:
        warnings.simplefilter("ignore")
        path = Path(tmp) / "modifier.onnx"
        torch.onnx.export(
            module,
            example,
            str(path),
            input_names=list(feeds),
            output_names=["vector"],
            dynamic_axes={
                "ids": {0: "batch", 1: "tokens"},
                "mask": {0: "batch", 1: "tokens"},
                "reference": {0: "batch"},
                "vector": {0: "batch"},
            },
            opset_version=17,
            dynamo=False,
        )
        graph = onnx.load(str(path))
    metadata = {
        **meta,
        "layout": LAYOUT,
        "wordpiece": json.dumps(list(encoder.pieces.vocab)),
        "max_tokens": str(encoder.pieces.max_tokens),
    }
    for key, value in metadata.items():
        graph.metadata_props.add(key=key, value=value)
    artifact: bytes = graph.SerializeToString()
    with torch.no_grad():
        expected = module(*example).numpy()
    got = ort.InferenceSession(artifact, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    err = float(np.abs(got - expected).max())
    if err > PARITY_ATOL:
        raise RuntimeError(f"ONNX modifier model drifts from torch by {err:.2e}")
    return artifact
