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

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from processors.embedding import ModelCard, preprocess
from training.datasets import to_rgb
from training.export import GEM_P, IMAGENET_MEAN, IMAGENET_STD, pretrained
from training.real_shots import ShotConfig, degrade


@dataclass(frozen=True)
class EncoderSpec:
    variant: str  # lite0 | lite2
    image_size: int
    dim: int = 256
    trainable_from: int = 0  # the first trained block (0: all; the stem trains with block 0)
    # 0: every block and the backbone's 1280-channel head; n: the first n blocks, then a new
    # 1x1 convolution of ``head_width`` channels (a compact model's cheaper depth)
    blocks: int = 0
    head_width: int = 512


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 3
    batch: int = 48
    lr: float = 3e-4
    temperature: float = 0.05
    regression: float = 1.0  # weight of the cosine regression in the compatibility loss
    # weight of the regression onto the gallery model's embedding of the same shot (a cached
    # shot's; a fresh shot's and a clean photo's: the photo's embedding)
    distillation: float = 1.0
    clean_share: float = 0.25  # of a compatible batch's queries: clean photos, not shots
    seed: int = 0
    threads: int = 2
    cosine: bool = False  # the learning rate decays to 0 over the run (else constant)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_encoder(spec: EncoderSpec) -> Any:
    """Backbone (maybe truncated) -> head -> GeM -> linear projection -> L2 norm, one torch
    module; ``frozen_part`` and ``tail`` split it where training starts."""
    import torch

    net = pretrained(spec.variant)
    blocks = list(net._blocks[: spec.blocks or None])
    if spec.blocks:
        width = spec.head_width
        channels = blocks[-1]._project_conv.out_channels
        head = torch.nn.Sequential(
            torch.nn.Conv2d(channels, width, 1, bias=False),
            torch.nn.BatchNorm2d(width),
            torch.nn.ReLU6(),
        )
    else:
        width = net._conv_head.out_channels
        head = torch.nn.Sequential(net._conv_head, net._bn1, net._swish)

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = torch.nn.Sequential(net._conv_stem, net._bn0, net._swish)
            self.blocks = torch.nn.ModuleList(blocks)
            self.head = head
            self.project = torch.nn.Linear(width, spec.dim)
            self.trainable_from = spec.trainable_from

        def frozen_part(self, x: torch.Tensor) -> torch.Tensor:
            x = self.stem(x)
            for block in self.blocks[: self.trainable_from]:
                x = block(x)
            return x

        def tail(self, x: torch.Tensor) -> torch.Tensor:
            for block in self.blocks[self.trainable_from :]:
                x = block(x)
            fmap = self.head(x).clamp(min=1e-6)
            pooled = fmap.pow(GEM_P).mean((2, 3)).pow(1.0 / GEM_P)
            return torch.nn.functional.normalize(self.project(pooled), dim=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.trainable_from:
                with torch.no_grad():
                    x = self.frozen_part(x)
            else:
                x = self.frozen_part(x)
            return self.tail(x)

    encoder = Encoder()
    if spec.trainable_from:
        for module in (encoder.stem, *encoder.blocks[: spec.trainable_from]):
            module.eval()
            for p in module.parameters():
                p.requires_grad_(False)
    return encoder


def to_batch(images: Sequence[np.ndarray], size: int) -> Any:
    """RGB uint8 arrays -> the normalised NCHW tensor serving feeds the ONNX export."""
    import torch

    card = ModelCard("training", size, 0, IMAGENET_MEAN, IMAGENET_STD, "")
    return torch.from_numpy(preprocess(images, card))


def set_train(encoder: Any) -> None:
    encoder.train()
    if encoder.trainable_from:  # frozen blocks keep their batch-norm statistics
        encoder.stem.eval()
        for block in encoder.blocks[: encoder.trainable_from]:
            block.eval()


def info_nce(q: Any, k: Any, temperature: float) -> Any:
    """Row i of ``q`` and of ``k`` show one item; the batch's other rows are negatives (both
    ways)."""
    import torch

    logits = q @ k.T / temperature
    target = torch.arange(len(q))
    return (
        torch.nn.functional.cross_entropy(logits, target)
        + torch.nn.functional.cross_entropy(logits.T, target)
    ) / 2


def shots_of(images: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    config = ShotConfig()
    return [degrade(g, rng, config) for g in images]


def seeded(config: TrainConfig) -> np.random.Generator:
    """Seeds torch and numpy, and sets torch's threads."""
    import torch

    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    return np.random.default_rng(config.seed)


def train_homogeneous(
    spec: EncoderSpec,
    images: np.ndarray,
    config: TrainConfig,
    log: Callable[[str], None] = print,
) -> Any:
    """A shot and its item's clean photo, through the same encoder, pulled together against
    the batch's other items (symmetric InfoNCE)."""
    rng = seeded(config)
    encoder = build_encoder(spec)

    def batch_loss(rows: np.ndarray) -> Any:
        shots = to_batch(shots_of(images[rows], rng), spec.image_size)
        clean = to_batch([to_rgb(g) for g in images[rows]], spec.image_size)
        return info_nce(encoder(shots), encoder(clean), config.temperature)

    label = f"{spec.variant}@{spec.image_size} homogeneous"
    return fit(encoder, config, len(images), rng, batch_loss, lambda m: log(f"  {label} {m}"))


@dataclass(frozen=True)
class Distillation:
    """Fixed SYNTHETIC shots of the first photos (shot x photo x H x W x 3, uint8) and the
    gallery model's embedding of each (shot x photo x dim): the compatible model learns what
    the gallery model makes of the very shot, the paragon's query."""

    shots: np.ndarray
    targets: np.ndarray

    def queries(
        self, images: np.ndarray, rows: np.ndarray, photo_targets: Any, rng: np.random.Generator
    ) -> tuple[list[np.ndarray], Any]:
        """A cached shot and its gallery embedding for rows it covers; a fresh shot and the
        photo's gallery embedding for the others."""
        import torch

        drawn = rng.integers(len(self.shots), size=len(rows))
        covered = rows < self.shots.shape[1]
        shots = [
            self.shots[d, r] if c else degrade(images[r], rng, ShotConfig())
            for d, r, c in zip(drawn, rows, covered, strict=True)
        ]
        targets = photo_targets.clone()
        if covered.any():
            cached = self.targets[drawn[covered], rows[covered]]
            targets[torch.from_numpy(covered)] = torch.from_numpy(cached.astype(np.float32))
        return shots, targets


def train_compatible(
    spec: EncoderSpec,
    images: np.ndarray,
    gallery_targets: np.ndarray,
    config: TrainConfig,
    log: Callable[[str], None] = print,
    start_from: Any = None,
    distillation: Distillation | None = None,
) -> Any:
    """Queries (shots, and some clean photos) pulled onto the frozen gallery model's embedding
    of their item, against every train item's gallery embedding, plus a cosine regression onto
    it, and with ``distillation`` one onto the gallery model's embedding of the same shot.
    ``start_from``: an encoder of the same spec whose weights it starts from (the homogeneous
    model: shot invariance learnt already, only the way into the gallery's space to learn)."""
    import torch

    rng = seeded(config)
    encoder = build_encoder(spec)
    if start_from is not None:
        own = encoder.state_dict()
        fits = {k: v for k, v in start_from.state_dict().items() if v.shape == own[k].shape}
        encoder.load_state_dict(fits, strict=False)  # a projection of another width: anew
    bank = torch.from_numpy(np.asarray(gallery_targets, np.float32))

    def batch_loss(rows: np.ndarray) -> Any:
        target = torch.from_numpy(rows.astype(np.int64))
        queries = [to_rgb(g) for g in images[rows]]
        shot = np.flatnonzero(rng.random(len(rows)) >= config.clean_share)
        distilled = torch.zeros(())
        if distillation is None:
            for i in shot:
                queries[i] = degrade(images[rows[i]], rng, ShotConfig())
        else:
            seen = bank[target]  # a clean photo's: the photo's own embedding
            shots, seen[shot] = distillation.queries(images, rows[shot], seen[shot], rng)
            for i, image in zip(shot, shots, strict=True):
                queries[i] = image
        q = encoder(to_batch(queries, spec.image_size))
        if distillation is not None:
            distilled = config.distillation * (1 - (q * seen).sum(1).mean())
        logits = q @ bank.T / config.temperature
        regression = 1 - (q * bank[target]).sum(1).mean()
        cross = torch.nn.functional.cross_entropy(logits, target)
        return distilled + cross + config.regression * regression

    label = f"{spec.variant}@{spec.image_size} compatible"
    return fit(encoder, config, len(images), rng, batch_loss, lambda m: log(f"  {label} {m}"))


def fit(
    encoder: Any,
    config: TrainConfig,
    rows: int,
    rng: np.random.Generator,
    batch_loss: Callable[[np.ndarray], Any],
    log: Callable[[str], None],
) -> Any:
    """The trainers' one loop: each epoch a permutation of the ``rows`` in full batches,
    ``batch_loss(batch rows)`` stepped with AdamW and the schedule; the mean loss logged."""
    optimiser, schedule = optimiser_for(encoder, config, rows)
    for epoch in range(config.epochs):
        set_train(encoder)
        order = rng.permutation(rows)
        losses = []
        for first in range(0, rows - config.batch + 1, config.batch):
            loss = batch_loss(order[first : first + config.batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            losses.append(float(loss.detach()))
        log(f"epoch {epoch + 1}: loss {np.mean(losses):.3f}")
    return encoder.eval()


def optimiser_for(encoder: Any, config: TrainConfig, rows: int) -> tuple[Any, Any]:
    """AdamW over the trained parameters, and its learning-rate schedule over ``rows`` a
    epoch (step it after each batch)."""
    import torch

    params = [p for p in encoder.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params, lr=config.lr, weight_decay=1e-4)
    steps = max(1, config.epochs * (rows // config.batch))

    def decay(step: int) -> float:
        return float(0.5 * (1 + np.cos(np.pi * min(step, steps) / steps))) if config.cosine else 1.0

    return optimiser, torch.optim.lr_scheduler.LambdaLR(optimiser, decay)


def embed(encoder: Any, images: list[np.ndarray], size: int, batch: int = 64) -> np.ndarray:
    """Torch-side embeddings (evaluation during development; serving reads the ONNX export)."""
    import torch

    out = []
    with torch.no_grad():
        for start in range(0, len(images), batch):
            out.append(encoder(to_batch(images[start : start + batch], size)).numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)
