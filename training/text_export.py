"""A trained text model to two ONNX graphs, each carrying what turns text into its inputs (the
vocabulary, in the graph's metadata), so a worker or an API replica needs the bytes alone:

- ``query``: word ids (GRU) or WordPiece ids and mask (MiniLM) -> the query vector;
- ``product``: word ids and dense features -> the product vector.
Outputs are checked against torch before they are returned.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from training.text_model import TextModel
from training.text_towers import MiniLMQuery

PARITY_ATOL = 1e-4


@dataclass(frozen=True)
class TextArtifacts:
    query: bytes
    product: bytes
    kind: str
    dim: int


def _graph(
    module: torch.nn.Module,
    example: tuple[torch.Tensor, ...],
    names: list[str],
    metadata: dict[str, str],
) -> bytes:
    axes = {n: {0: "batch", 1: "tokens"} for n in names if n != "dense"}
    axes.update({"dense": {0: "batch"}, "vector": {0: "batch"}})
    module.eval()
    with warnings.catch_warnings(), tempfile.TemporaryDirectory() as tmp:
        warnings.simplefilter("ignore")
        path = Path(tmp) / "tower.onnx"
        torch.onnx.export(
            module,
            example,
            str(path),
            input_names=names,
            output_names=["vector"],
            dynamic_axes={k: v for k, v in axes.items() if k in [*names, "vector"]},
            opset_version=17,
            dynamo=False,
        )
        graph = onnx.load(str(path))
    for key, value in metadata.items():
        graph.metadata_props.add(key=key, value=value)
    data: bytes = graph.SerializeToString()
    return data


def _check(artifact: bytes, module: torch.nn.Module, inputs: dict[str, np.ndarray]) -> None:
    """Refuse an export whose outputs drift from torch's."""
    with torch.no_grad():
        expected = module(*(torch.from_numpy(v) for v in inputs.values())).numpy()
    session = ort.InferenceSession(artifact, providers=["CPUExecutionProvider"])
    got = session.run(None, inputs)[0]
    err = float(np.abs(got - expected).max())
    if err > PARITY_ATOL:
        raise RuntimeError(f"ONNX text tower drifts from torch by {err:.2e}")


def export_text_model(model: TextModel, probe: list[str], dense: np.ndarray) -> TextArtifacts:
    """``probe``: a few texts and ``dense``: their products' features, for the parity check."""
    kind = "minilm" if isinstance(model.query, MiniLMQuery) else "gru"
    words = {"words": json.dumps(list(model.words.index)), "kind": kind}
    if model.pieces is not None:
        ids, mask = model.pieces.batch(probe)
        q_inputs = {"ids": ids, "mask": mask}
        q_meta = {"wordpiece": json.dumps(list(model.pieces.vocab)), "kind": kind}
    else:
        q_inputs = {"ids": model.words.batch(probe)[0]}
        q_meta = words
    q_meta["max_tokens"] = str(model.words.max_tokens)
    example = tuple(torch.from_numpy(v) for v in q_inputs.values())
    query = _graph(model.query, example, list(q_inputs), q_meta)
    _check(query, model.query, q_inputs)
    p_inputs = {"ids": model.words.batch(probe)[0], "dense": dense.astype(np.float32)}
    p_example = tuple(torch.from_numpy(v) for v in p_inputs.values())
    product = _graph(model.product, p_example, ["ids", "dense"], words)
    _check(product, model.product, p_inputs)
    return TextArtifacts(query, product, kind, model.config.dim)
