"""Two-tower text retrieval learned from clicks (the Myntra approach): a query tower over the
typed words and a product tower over the product's words, attributes, colours and image
embedding, both into one normalised space.

Query towers: ``gru`` (a bidirectional GRU over frozen GloVe vectors, the baseline) and
``minilm`` (MiniLM-L6 fine-tuned, the transformer). The product tower is the same for both:
the mean GloVe vector of its words beside its dense features (processors/text_features.py),
through a small MLP. Each is exported to ONNX on its own: the API runs the query tower, the
worker the product tower.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from training.minilm import MiniLM


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.to(x.dtype)[:, :, None]
    return (x * m).sum(1) / m.sum(1).clamp(min=1.0)


class GruQuery(nn.Module):
    """Word ids (0 pads) in, a normalised query vector out."""

    def __init__(self, vectors: np.ndarray, dim: int = 128, hidden: int = 128) -> None:
        super().__init__()
        self.embed = nn.Embedding.from_pretrained(  # type: ignore[no-untyped-call]
            torch.from_numpy(vectors), freeze=True
        )
        self.gru = nn.GRU(vectors.shape[1], hidden, batch_first=True, bidirectional=True)
        self.project = nn.Linear(2 * hidden, dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(self.embed(ids))
        return nn.functional.normalize(self.project(_masked_mean(out, ids != 0)), dim=-1)


class MiniLMQuery(nn.Module):
    """WordPiece ids and attention mask in, a normalised query vector out."""

    def __init__(self, encoder: MiniLM, dim: int = 128) -> None:
        super().__init__()
        self.encoder = encoder
        self.project = nn.Linear(encoder.dim, dim)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.project(self.encoder(ids, mask)), dim=-1)


class ProductTower(nn.Module):
    """Word ids (0 pads) and dense features in, a normalised product vector out."""

    def __init__(self, vectors: np.ndarray, dense: int, dim: int = 128, hidden: int = 256) -> None:
        super().__init__()
        self.embed = nn.Embedding.from_pretrained(  # type: ignore[no-untyped-call]
            torch.from_numpy(vectors), freeze=True
        )
        self.mlp = nn.Sequential(
            nn.Linear(vectors.shape[1] + dense, hidden), nn.ReLU(), nn.Linear(hidden, dim)
        )

    def forward(self, ids: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
        words = _masked_mean(self.embed(ids), ids != 0)
        return nn.functional.normalize(self.mlp(torch.cat([words, dense], dim=-1)), dim=-1)


def contrastive_loss(
    q: torch.Tensor,
    p: torch.Tensor,
    hard: torch.Tensor,
    temperature: float = 0.05,
    same: torch.Tensor | None = None,
) -> torch.Tensor:
    """InfoNCE: each query against its clicked product, the other queries' products and its
    own skipped ones (``hard``: (B, H, D), zero rows for padding). ``same``: (B, B), true where
    another query clicked the very same product (not a negative for this one)."""
    in_batch = q @ p.T / temperature  # (B, B)
    if same is not None:
        in_batch = in_batch.masked_fill(same, float("-inf"))
    skipped = torch.einsum("bd,bhd->bh", q, hard) / temperature
    skipped = skipped.masked_fill(hard.abs().sum(-1) == 0, float("-inf"))
    logits = torch.cat([in_batch, skipped], dim=1)
    return nn.functional.cross_entropy(logits, torch.arange(len(q)))


def triplet_loss(
    q: torch.Tensor,
    p: torch.Tensor,
    hard: torch.Tensor,
    margin: float = 0.2,
    same: torch.Tensor | None = None,
) -> torch.Tensor:
    """Each query's clicked product above each of its skipped ones and the hardest other
    product of the batch by ``margin`` (cosines)."""
    positive = (q * p).sum(-1)
    skipped = torch.einsum("bd,bhd->bh", q, hard)
    real = hard.abs().sum(-1) > 0
    sims = q @ p.T
    sims = sims - 4.0 * torch.eye(len(q))
    if same is not None:
        sims = sims.masked_fill(same, -4.0)
    hardest = sims.max(dim=1).values
    terms = nn.functional.relu(margin - positive[:, None] + skipped) * real
    batch = nn.functional.relu(margin - positive + hardest)
    return (terms.sum() / real.sum().clamp(min=1) + batch.mean()) / 2
