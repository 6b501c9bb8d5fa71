"""Gallery, homogeneous and compatible query encoders, trained on the catalogue's own photos
(Fashion-MNIST train split) and SYNTHETIC real shots of them (training/real_shots.py).

- gallery model G: a large backbone (EfficientNet-Lite2 at 260 px) + a projection, trained so a
  shot of an item lands on the item's catalogue photo (InfoNCE over the batch, both ways);
- homogeneous compact H: the compact backbone (Lite0 at 64 px) trained the same way, on the
  same data, embedding both sides (CMP-NAS's "homogeneous" baseline);
- compatible compact C: the compact backbone trained so its embedding of a shot, or of a clean
  photo, lands on G's frozen embedding of the clean photo (InfoNCE against every train item's G
  embedding plus a cosine regression): it searches a gallery G embedded, with no re-index.

Early blocks can stay frozen (``trainable_from``) so a CPU can afford the large backbone; the
frozen part runs without gradients.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from training.datasets import to_rgb
from training.export import GEM_P, IMAGENET_MEAN, IMAGENET_STD, pretrained
from training.real_shots import ShotConfig, degrade


@dataclass(frozen=True)
class EncoderSpec:
    variant: str  # lite0 | lite2
    image_size: int
    dim: int = 256
    trainable_from: int = 0  # the first trained block (0: all; the stem trains with block 0)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 3
    batch: int = 48
    lr: float = 3e-4
    temperature: float = 0.05
    regression: float = 1.0  # weight of the cosine regression in the compatibility loss
    clean_share: float = 0.25  # of a compatible batch's queries: clean photos, not shots
    seed: int = 0
    threads: int = 2

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_encoder(spec: EncoderSpec) -> Any:
    """Backbone -> GeM -> linear projection -> L2 norm, as one torch module."""
    import torch

    net = pretrained(spec.variant)

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net
            self.project = torch.nn.Linear(1280, spec.dim)
            self.trainable_from = spec.trainable_from

        def frozen_part(self, x: torch.Tensor) -> torch.Tensor:
            x = self.net._swish(self.net._bn0(self.net._conv_stem(x)))
            for block in self.net._blocks[: self.trainable_from]:
                x = block(x)
            return x

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.trainable_from:
                with torch.no_grad():
                    x = self.frozen_part(x)
            else:
                x = self.frozen_part(x)
            for block in self.net._blocks[self.trainable_from :]:
                x = block(x)
            fmap = self.net._swish(self.net._bn1(self.net._conv_head(x))).clamp(min=1e-6)
            pooled = fmap.pow(GEM_P).mean((2, 3)).pow(1.0 / GEM_P)
            return torch.nn.functional.normalize(self.project(pooled), dim=1)

    encoder = Encoder()
    if spec.trainable_from:
        net = encoder.net
        frozen = [net._conv_stem, net._bn0, *net._blocks[: spec.trainable_from]]
        for module in frozen:
            module.eval()
            for p in module.parameters():
                p.requires_grad_(False)
    return encoder


def to_batch(images: list[np.ndarray], size: int) -> Any:
    """RGB uint8 arrays -> the normalised NCHW tensor the backbones were trained on."""
    import torch
    from PIL import Image

    mean = np.asarray(IMAGENET_MEAN, np.float32)[:, None, None]
    std = np.asarray(IMAGENET_STD, np.float32)[:, None, None]
    out = np.empty((len(images), 3, size, size), np.float32)
    for i, rgb in enumerate(images):
        resized = Image.fromarray(rgb).resize((size, size), Image.Resampling.BILINEAR)
        out[i] = (np.asarray(resized, np.float32).transpose(2, 0, 1) / 255.0 - mean) / std
    return torch.from_numpy(out)


def _set_train(encoder: Any) -> None:
    encoder.train()
    if encoder.trainable_from:  # frozen blocks keep their batch-norm statistics
        encoder.net._bn0.eval()
        for block in encoder.net._blocks[: encoder.trainable_from]:
            block.eval()


def _shots(images: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    config = ShotConfig()
    return [degrade(g, rng, config) for g in images]


def train_homogeneous(
    spec: EncoderSpec,
    images: np.ndarray,
    config: TrainConfig,
    log: Callable[[str], None] = print,
) -> Any:
    """A shot and its item's clean photo, through the same encoder, pulled together against
    the batch's other items (symmetric InfoNCE)."""
    import torch

    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    rng = np.random.default_rng(config.seed)
    encoder = build_encoder(spec)
    optimiser = _optimiser(encoder, config)
    for epoch in range(config.epochs):
        _set_train(encoder)
        order = rng.permutation(len(images))
        losses = []
        for start in range(0, len(order) - config.batch + 1, config.batch):
            rows = order[start : start + config.batch]
            shots = to_batch(_shots(images[rows], rng), spec.image_size)
            clean = to_batch([to_rgb(g) for g in images[rows]], spec.image_size)
            q, k = encoder(shots), encoder(clean)
            logits = q @ k.T / config.temperature
            target = torch.arange(len(rows))
            loss = (
                torch.nn.functional.cross_entropy(logits, target)
                + torch.nn.functional.cross_entropy(logits.T, target)
            ) / 2
            optimiser.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            optimiser.step()
            losses.append(float(loss.detach()))
        log(f"  {spec.variant}@{spec.image_size} homogeneous epoch {epoch + 1}: "
            f"loss {np.mean(losses):.3f}")  # fmt: skip
    return encoder.eval()


def train_compatible(
    spec: EncoderSpec,
    images: np.ndarray,
    gallery_targets: np.ndarray,
    config: TrainConfig,
    log: Callable[[str], None] = print,
) -> Any:
    """Queries (shots, and some clean photos) pulled onto the frozen gallery model's embedding
    of their item, against every train item's gallery embedding, plus a cosine regression."""
    import torch

    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    rng = np.random.default_rng(config.seed + 1)
    encoder = build_encoder(spec)
    optimiser = _optimiser(encoder, config)
    bank = torch.from_numpy(np.asarray(gallery_targets, np.float32))
    for epoch in range(config.epochs):
        _set_train(encoder)
        order = rng.permutation(len(images))
        losses = []
        for start in range(0, len(order) - config.batch + 1, config.batch):
            rows = order[start : start + config.batch]
            clean = rng.random(len(rows)) < config.clean_share
            queries = [
                to_rgb(g) if c else degrade(g, rng, ShotConfig())
                for g, c in zip(images[rows], clean, strict=True)
            ]
            q = encoder(to_batch(queries, spec.image_size))
            logits = q @ bank.T / config.temperature
            target = torch.from_numpy(rows.astype(np.int64))
            regression = 1 - (q * bank[target]).sum(1).mean()
            loss = torch.nn.functional.cross_entropy(logits, target)
            loss = loss + config.regression * regression
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(float(loss.detach()))
        log(f"  {spec.variant}@{spec.image_size} compatible epoch {epoch + 1}: "
            f"loss {np.mean(losses):.3f}")  # fmt: skip
    return encoder.eval()


def _optimiser(encoder: Any, config: TrainConfig) -> Any:
    import torch

    params = [p for p in encoder.parameters() if p.requires_grad]
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=1e-4)


def embed(encoder: Any, images: list[np.ndarray], size: int, batch: int = 64) -> np.ndarray:
    """Torch-side embeddings (evaluation during development; serving reads the ONNX export)."""
    import torch

    out = []
    with torch.no_grad():
        for start in range(0, len(images), batch):
            out.append(encoder(to_batch(images[start : start + batch], size)).numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)
