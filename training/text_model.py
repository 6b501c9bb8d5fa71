"""Training a text model (a query tower and the product tower, training/text_towers.py) on
click-mined pairs: (typed words, clicked product, products shown above it and skipped).

MiniLM's encoder is frozen by default (``encoder_lr`` 0): on the SIMULATED shoppers' held-out
wording, fine-tuning it on a few thousand clicks lost to the frozen encoder (NOTES.md), and a
frozen encoder lets training embed each distinct query once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from processors.tokens import WordIds, WordPiece
from stores.rows import tower_inputs
from training.glove import load_glove, vocabulary_of
from training.minilm import MiniLM, vocabulary
from training.text_towers import (
    GruQuery,
    MiniLMQuery,
    ProductTower,
    contrastive_loss,
    triplet_loss,
)

Kind = Literal["gru", "minilm"]


@dataclass(frozen=True)
class ProductTable:
    """The catalogue as the product tower sees it, one row per product."""

    ids: list[str]
    texts: list[str]
    dense: np.ndarray  # (N, dense_width)

    @classmethod
    def from_rows(cls, rows: Sequence[Mapping[str, Any]]) -> ProductTable:
        """Product rows as stores/rows.postgres_row shapes them (with their attributes)."""
        texts, dense = tower_inputs(rows)
        return cls([str(r["product_id"]) for r in rows], texts, dense)

    def row_of(self) -> dict[str, int]:
        return {p: i for i, p in enumerate(self.ids)}


@dataclass(frozen=True)
class TextPairs:
    """Mined pairs with products as rows of a ``ProductTable``."""

    queries: list[str]
    positives: list[int]
    skipped: list[list[int]]

    @classmethod
    def from_mined(
        cls, mined: Sequence[tuple[str, str, Sequence[str]]], table: ProductTable
    ) -> TextPairs:
        """(query text, clicked id, skipped ids) triples; products not in the table dropped."""
        rows = table.row_of()
        kept = [(q, p, s) for q, p, s in mined if p in rows]
        return cls(
            [q for q, _, _ in kept],
            [rows[p] for _, p, _ in kept],
            [[rows[x] for x in s if x in rows] for _, _, s in kept],
        )

    def __len__(self) -> int:
        return len(self.queries)


@dataclass(frozen=True)
class TextTrainConfig:
    kind: Kind = "minilm"
    loss: Literal["nce", "triplet"] = "nce"
    epochs: int = 4
    batch: int = 64
    dim: int = 128
    temperature: float = 0.05
    hard: int = 4  # skipped products per pair, nearest the click first
    lr: float = 2e-3
    encoder_lr: float = 0.0  # MiniLM's own weights (0: frozen)
    frequent_words: int = 50000  # GloVe words kept beside the catalogue's and the pairs'
    seed: int = 0


@dataclass
class TextModel:
    """A trained query tower and product tower, with what turns text into their inputs."""

    config: TextTrainConfig
    query: nn.Module
    product: ProductTower
    words: WordIds
    pieces: WordPiece | None
    history: list[float] = field(default_factory=list)

    def query_inputs(self, texts: Sequence[str]) -> tuple[torch.Tensor, ...]:
        if self.pieces is not None:
            ids, mask = self.pieces.batch(texts)
            return torch.from_numpy(ids), torch.from_numpy(mask)
        return (torch.from_numpy(self.words.batch(texts)[0]),)

    def encode_queries(self, texts: Sequence[str], batch: int = 256) -> np.ndarray:
        self.query.eval()
        with torch.no_grad():
            out = [
                self.query(*self.query_inputs(texts[i : i + batch]))
                for i in range(0, len(texts), batch)
            ]
        return torch.cat(out).numpy() if out else np.zeros((0, self.config.dim), np.float32)

    def product_inputs(
        self, table: ProductTable, rows: Sequence[int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        ids, _ = self.words.batch([table.texts[i] for i in rows])
        return torch.from_numpy(ids), torch.from_numpy(table.dense[list(rows)])

    def encode_products(self, table: ProductTable, batch: int = 512) -> np.ndarray:
        self.product.eval()
        with torch.no_grad():
            out = [
                self.product(*self.product_inputs(table, range(i, min(i + batch, len(table.ids)))))
                for i in range(0, len(table.ids), batch)
            ]
        return torch.cat(out).numpy() if out else np.zeros((0, self.config.dim), np.float32)


def _towers(config: TextTrainConfig, table: ProductTable, pairs: TextPairs) -> TextModel:
    wanted = vocabulary_of(table.texts) | vocabulary_of(pairs.queries)
    vocab, vectors = load_glove(wanted, config.frequent_words)
    product = ProductTower(vectors, table.dense.shape[1], config.dim)
    words = WordIds(vocab)
    if config.kind == "gru":
        return TextModel(config, GruQuery(vectors, config.dim), product, words, None)
    query = MiniLMQuery(MiniLM.pretrained(), config.dim)
    return TextModel(config, query, product, words, WordPiece(vocabulary()))


def _query_encoder(model: TextModel, pairs: TextPairs) -> Any:
    """A function from query texts to training-mode query vectors; a frozen MiniLM embeds
    each distinct query once."""
    query = model.query
    if not isinstance(query, MiniLMQuery) or model.config.encoder_lr > 0:
        return lambda texts: query(*model.query_inputs(texts))
    query.encoder.requires_grad_(False).eval()
    distinct = sorted(set(pairs.queries))
    with torch.no_grad():
        cached = [
            query.encoder(*model.query_inputs(distinct[i : i + 256]))
            for i in range(0, len(distinct), 256)
        ]
    table = dict(zip(distinct, torch.cat(cached) if cached else [], strict=True))
    return lambda texts: nn.functional.normalize(
        query.project(torch.stack([table[t] for t in texts])), dim=-1
    )


def _parameters(model: TextModel) -> list[dict[str, Any]]:
    config = model.config
    groups: list[dict[str, Any]] = []
    if isinstance(model.query, MiniLMQuery):
        groups.append({"params": model.query.project.parameters(), "lr": config.lr})
        if config.encoder_lr > 0:
            groups.append({"params": model.query.encoder.parameters(), "lr": config.encoder_lr})
    else:
        trainable = [p for p in model.query.parameters() if p.requires_grad]
        groups.append({"params": trainable, "lr": config.lr})
    product = [p for p in model.product.parameters() if p.requires_grad]
    groups.append({"params": product, "lr": config.lr})
    return groups


def train_text_model(pairs: TextPairs, table: ProductTable, config: TextTrainConfig) -> TextModel:
    if len(pairs) < 2:
        raise ValueError(f"{len(pairs)} text pairs: at least 2 are needed to train")
    torch.manual_seed(config.seed)
    model = _towers(config, table, pairs)
    encode = _query_encoder(model, pairs)
    optimiser = torch.optim.AdamW(_parameters(model), weight_decay=1e-4)
    rng = np.random.default_rng(config.seed)
    for _ in range(config.epochs):
        model.query.train()
        model.product.train()
        if isinstance(model.query, MiniLMQuery) and config.encoder_lr == 0:
            model.query.encoder.eval()
        total = 0.0
        order = rng.permutation(len(pairs))
        for start in range(0, len(order), config.batch):
            batch = order[start : start + config.batch]
            if len(batch) < 2:
                continue
            loss = _step_loss(model, encode, pairs, table, batch)
            optimiser.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            optimiser.step()
            total += float(loss.item()) * len(batch)
        model.history.append(total / len(pairs))
    return model


def _step_loss(
    model: TextModel, encode: Any, pairs: TextPairs, table: ProductTable, batch: np.ndarray
) -> torch.Tensor:
    config = model.config
    q = encode([pairs.queries[i] for i in batch])
    clicked = [pairs.positives[i] for i in batch]
    p = model.product(*model.product_inputs(table, clicked))
    rows = torch.tensor(clicked)
    same = (rows[:, None] == rows[None, :]) & ~torch.eye(len(clicked), dtype=torch.bool)
    hard = torch.zeros(len(batch), config.hard, config.dim)
    slots = [
        (n, j, r)
        for n, i in enumerate(batch)
        for j, r in enumerate(pairs.skipped[i][len(pairs.skipped[i]) - config.hard :])
    ]
    if slots:
        vectors = model.product(*model.product_inputs(table, [r for _, _, r in slots]))
        hard[[n for n, _, _ in slots], [j for _, j, _ in slots]] = vectors
    if config.loss == "nce":
        return contrastive_loss(q, p, hard, config.temperature, same)
    return triplet_loss(q, p, hard, same=same)
