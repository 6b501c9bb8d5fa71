"""The image + text modifier model (DeepStyle's joint network, issue 16): a reference's base image
embedding and the modifier's MiniLM sentence vector in, a query vector in the image index's
space out, so "this one, but in red" is an ordinary nearest-neighbour search.

The composition is a gated residual (as TIRG): ``q = norm(sigmoid(g(i, t)) * i + r(i, t))``,
starting at the image itself (the residual's output layer starts at zero, the gate open), so
training moves it only as far as the pairs ask. Trained with a softmax over the training
gallery, every rendering of the target design a positive: the reference itself and its other
changes are the hardest negatives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from processors.tokens import WordPiece
from training.minilm import MiniLM, vocabulary


@dataclass(frozen=True)
class ModifyTrainConfig:
    epochs: int = 40
    batch: int = 64
    hidden: int = 512
    lr: float = 1e-3
    temperature: float = 0.05
    seed: int = 0


class JointModifier(nn.Module):
    def __init__(self, image_dim: int, text_dim: int, hidden: int = 512) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(image_dim + text_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU()
        )
        self.gate = nn.Linear(hidden, image_dim)
        self.residual = nn.Linear(hidden, image_dim)
        nn.init.zeros_(self.residual.weight)
        nn.init.zeros_(self.residual.bias)
        nn.init.constant_(self.gate.bias, 3.0)  # sigmoid(3) = 0.95: the image passes at first

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        h = self.mlp(torch.cat([image, text], dim=-1))
        q = torch.sigmoid(self.gate(h)) * image + self.residual(h)
        return nn.functional.normalize(q, dim=-1)


class SentenceEncoder:
    """MiniLM-L6's mean-pooled sentence vectors, normalised (frozen: the modifier's meaning)."""

    def __init__(self, max_tokens: int = 32) -> None:
        self.model = MiniLM.pretrained().eval()
        self.pieces = WordPiece(vocabulary(), max_tokens)

    def encode(self, texts: Sequence[str], batch: int = 256) -> np.ndarray:
        out = []
        with torch.no_grad():
            for i in range(0, len(texts), batch):
                ids, mask = self.pieces.batch(list(texts[i : i + batch]))
                v = self.model(torch.from_numpy(ids), torch.from_numpy(mask))
                out.append(nn.functional.normalize(v, dim=-1).numpy())
        return np.concatenate(out) if out else np.zeros((0, self.model.dim), np.float32)


@dataclass
class TrainedModifier:
    model: JointModifier
    history: list[float] = field(default_factory=list)

    def queries(self, images: np.ndarray, texts: np.ndarray) -> np.ndarray:
        self.model.eval()
        with torch.no_grad():
            q = self.model(torch.from_numpy(images), torch.from_numpy(texts))
        out: np.ndarray = q.numpy()
        return out


def train_modifier(
    images: np.ndarray,
    texts: np.ndarray,
    positives: np.ndarray,
    gallery: np.ndarray,
    config: ModifyTrainConfig,
) -> TrainedModifier:
    """``images`` (N, D) references' embeddings, ``texts`` (N, T) modifiers' vectors,
    ``positives`` (N, G) bool: which of ``gallery`` (G, D) are each query's targets."""
    if len(images) < 2 or not positives.any(axis=1).all():
        raise ValueError("every training query needs a target in the gallery (and two queries)")
    torch.manual_seed(config.seed)
    model = JointModifier(images.shape[1], texts.shape[1], config.hidden)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=1e-4)
    g = torch.from_numpy(gallery.astype(np.float32))
    x, t = torch.from_numpy(images), torch.from_numpy(texts)
    pos = torch.from_numpy(positives)
    rng = np.random.default_rng(config.seed)
    trained = TrainedModifier(model)
    for _ in range(config.epochs):
        model.train()
        total = 0.0
        order = rng.permutation(len(images))
        for start in range(0, len(order), config.batch):
            b = torch.from_numpy(order[start : start + config.batch])
            logits = model(x[b], t[b]) @ g.T / config.temperature
            wanted = logits.masked_fill(~pos[b], float("-inf")).logsumexp(dim=1)
            loss = (logits.logsumexp(dim=1) - wanted).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += loss.item() * len(b)
        trained.history.append(total / len(images))
    return trained
