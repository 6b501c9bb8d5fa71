"""Outfit compatibility (issue 17, after Revanur et al., RecSys 2021): type-aware item
embeddings over the served image features (processors/modify.joined_features), trained on a
fraction of labelled outfits.

Supervised: the labelled outfits' labels (a logistic loss on the outfit score) and a margin
between each compatible outfit and itself with one item swapped for a random labelled item of
the same role. Semi-supervised adds, from the unlabelled items (no label read):
- a pseudo-positive per compatible outfit in the batch: every item swapped for one of its
  nearest unlabelled items of the same role (nearest in the served features), and a
  pseudo-negative of random unlabelled items in the same roles, held apart by the margin;
- consistency: outfits of unlabelled items score alike read from the items' features or from
  their augmented views' (another rendering, a flip or a crop: colour and pattern kept), so
  what survives the augmentation is what compatibility is learned on (the Pi-model's
  consistency, on outfit scores). InfoNCE between views (on the outfit space or a head of its
  own), neighbours in the learned embedding and a Mean Teacher labelling the withheld outfits
  were measured and dropped (NOTES.md).
Both return the weights' moving average: one run's last steps vary a lot on a few hundred
outfits, their average much less.

The served half (processors/outfit_compat.py) scores with the exported encoder and the masks.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from processors.outfit_compat import N_ROLES


@dataclass(frozen=True)
class CompatConfig:
    steps: int = 800
    batch: int = 64  # outfits
    dim: int = 64
    hidden: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-3
    dropout: float = 0.2
    margin: float = 0.3
    semi: bool = False
    pseudo_weight: float = 1.0
    consistency_weight: float = 1.0
    neighbours: int = 3  # a pseudo-positive's item: one of this many nearest
    average: float = 0.99  # the returned weights' moving-average decay per step
    seed: int = 0


class TypeAwareCompat(nn.Module):
    """An item encoder into one space and a mask per role pair: two items are compatible
    when close in their pair's masked subspace (Vasileva et al.'s conditional masks)."""

    def __init__(self, features: int, dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, dim)
        )
        self.masks = nn.Parameter(torch.zeros(N_ROLES, N_ROLES, dim))
        self.scale = nn.Parameter(torch.tensor(4.0))
        self.bias = nn.Parameter(torch.tensor(2.0))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.encoder(x), dim=-1)

    def pair_masks(self) -> torch.Tensor:
        """(roles, roles, dim), symmetric and positive."""
        return nn.functional.softplus(self.masks + self.masks.transpose(0, 1))

    def outfit_scores(
        self, e: torch.Tensor, roles: torch.Tensor, valid: torch.Tensor
    ) -> torch.Tensor:
        """``e`` (B, K, dim) items' embeddings; higher: more compatible (minus the mean
        masked squared distance over the outfit's pairs)."""
        diff = e[:, :, None] - e[:, None, :]
        m = self.pair_masks()[roles[:, :, None], roles[:, None, :]]
        d = ((diff * m) ** 2).sum(-1)
        k = e.shape[1]
        pairs = valid[:, :, None] & valid[:, None, :] & ~torch.eye(k, dtype=torch.bool)
        return -(d * pairs).sum((1, 2)) / pairs.sum((1, 2)).clamp(min=1)


@dataclass(frozen=True)
class Outfits:
    """Outfits as padded arrays: item rows (B, K), their role indices, which slots hold an
    item, and labels (1 compatible)."""

    items: np.ndarray
    roles: np.ndarray
    valid: np.ndarray
    labels: np.ndarray

    @classmethod
    def of(
        cls, outfits: Sequence[Sequence[int]], roles: np.ndarray, labels: Sequence[bool]
    ) -> Outfits:
        k = max((len(o) for o in outfits), default=1)
        items = np.zeros((len(outfits), k), np.int64)
        valid = np.zeros((len(outfits), k), bool)
        for i, o in enumerate(outfits):
            items[i, : len(o)] = o
            valid[i, : len(o)] = True
        return cls(items, roles[items], valid, np.asarray(labels, np.float32))

    def __len__(self) -> int:
        return len(self.items)


@dataclass
class TrainedCompat:
    model: TypeAwareCompat
    history: list[float] = field(default_factory=list)

    def embeddings(self, features: np.ndarray) -> np.ndarray:
        self.model.eval()
        with torch.no_grad():
            out: np.ndarray = self.model.embed(torch.from_numpy(features)).numpy()
        return out

    def masks(self) -> np.ndarray:
        with torch.no_grad():
            out: np.ndarray = self.model.pair_masks().numpy()
        return out


def _by_role(rows: np.ndarray, roles: np.ndarray) -> list[np.ndarray]:
    return [rows[roles[rows] == r] for r in range(N_ROLES)]


def _swap_random(
    items: np.ndarray, roles: np.ndarray, valid: np.ndarray, pools: list[np.ndarray],
    rng: np.random.Generator, every: bool,
) -> np.ndarray:  # fmt: skip
    """Items swapped for random ones of the same role: one slot per outfit, or ``every``."""
    out = items.copy()
    for b in range(len(items)):
        slots = np.flatnonzero(valid[b])
        for s in slots if every else [int(rng.choice(slots))]:
            pool = pools[roles[b, s]]
            if len(pool):
                out[b, s] = pool[int(rng.integers(len(pool)))]
    return out


class _Trainer:
    def __init__(
        self,
        features: np.ndarray,
        views: np.ndarray,
        item_roles: np.ndarray,
        labelled: Outfits,
        unlabelled: np.ndarray,
        config: CompatConfig,
    ) -> None:
        self.c = config
        self.rng = np.random.default_rng([config.seed, 83])
        torch.manual_seed(config.seed)
        self.x = torch.from_numpy(features.astype(np.float32))
        self.views = torch.from_numpy(views.astype(np.float32))
        self.item_roles = item_roles
        self.labelled = labelled
        self.model = TypeAwareCompat(features.shape[1], config.dim, config.hidden, config.dropout)
        self.opt = torch.optim.AdamW(
            self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
        seen = np.unique(labelled.items[labelled.valid])
        self.labelled_pools = _by_role(seen, item_roles)
        self.unlabelled = unlabelled
        self.unlabelled_pools = _by_role(unlabelled, item_roles)

    def scores(
        self, items: np.ndarray, roles: np.ndarray, valid: np.ndarray, view: bool = False
    ) -> torch.Tensor:
        """Outfits' scores from the items' features (``view``: each item's random view's)."""
        if view:
            pick = self.rng.integers(self.views.shape[1], size=items.shape)
            x = self.views[torch.from_numpy(items), torch.from_numpy(pick)]
        else:
            x = self.x[torch.from_numpy(items)]
        e = self.model.embed(x)
        return self.model.outfit_scores(e, torch.from_numpy(roles), torch.from_numpy(valid))

    def supervised(self, b: np.ndarray) -> torch.Tensor:
        o = self.labelled
        s = self.scores(o.items[b], o.roles[b], o.valid[b])
        y = torch.from_numpy(o.labels[b])
        loss = nn.functional.binary_cross_entropy_with_logits(
            self.model.scale * s + self.model.bias, y
        )
        pos = b[o.labels[b] > 0]
        if len(pos):
            swapped = _swap_random(o.items[pos], o.roles[pos], o.valid[pos],
                                   self.labelled_pools, self.rng, every=False)  # fmt: skip
            neg = self.scores(swapped, o.roles[pos], o.valid[pos])
            loss = loss + nn.functional.relu(self.c.margin - s[y > 0] + neg).mean()
        return loss

    def nearest(self) -> np.ndarray:
        """Per item row: its ``neighbours`` nearest unlabelled rows of its role (by the served
        features' cosine; never itself)."""
        e = self.x.numpy()
        k = self.c.neighbours
        near = np.repeat(np.arange(len(e))[:, None], k, axis=1)
        for r, pool in enumerate(self.unlabelled_pools):
            rows = np.flatnonzero(self.item_roles == r)
            if not len(rows) or len(pool) < 2:
                continue
            sims = e[rows] @ e[pool].T
            sims[pool[None, :] == rows[:, None]] = -np.inf
            take = min(k, len(pool) - 1)
            top = np.argsort(-sims, axis=1)[:, :take]
            near[rows] = pool[top[:, np.arange(k) % take]]
        return near

    def pseudo(self, b: np.ndarray, near: np.ndarray) -> torch.Tensor:
        """Pseudo-positives (each item swapped for a near unlabelled one) over
        pseudo-negatives (random unlabelled items), from the batch's compatible outfits."""
        o = self.labelled
        pos = b[o.labels[b] > 0]
        if not len(pos):
            return torch.zeros(())
        items, roles, valid = o.items[pos], o.roles[pos], o.valid[pos]
        pick = self.rng.integers(self.c.neighbours, size=items.shape)
        positive = np.where(valid, near[items, pick], items)
        negative = _swap_random(items, roles, valid, self.unlabelled_pools, self.rng, every=True)
        sp = self.scores(positive, roles, valid)
        sn = self.scores(negative, roles, valid)
        return nn.functional.relu(self.c.margin - sp + sn).mean()

    def consistency(self, b: np.ndarray) -> torch.Tensor:
        """Outfits of unlabelled items in the batch's roles score alike whether read from the
        items or from their augmented views."""
        o = self.labelled
        items = _swap_random(o.items[b], o.roles[b], o.valid[b], self.unlabelled_pools, self.rng,
                             every=True)  # fmt: skip
        plain = self.scores(items, o.roles[b], o.valid[b])
        viewed = self.scores(items, o.roles[b], o.valid[b], view=True)
        return ((plain - viewed) ** 2).mean()

    def run(self) -> TrainedCompat:
        # the weights' moving average is the model returned: one run's last steps vary a lot
        # on a few hundred outfits, their average much less
        average = copy.deepcopy(self.model).eval()
        with torch.no_grad():  # accumulated from zero, divided by its weight at the end
            for kept in average.parameters():
                kept.zero_()
        trained = TrainedCompat(average)
        n = len(self.labelled)
        order = self.rng.permutation(n)
        at = 0
        semi = self.c.semi and len(self.unlabelled) > 0
        near = self.nearest() if semi else np.zeros((0, 0), np.int64)
        self.model.train()
        for _ in range(self.c.steps):
            if at + self.c.batch > n:
                order, at = self.rng.permutation(n), 0
            b = order[at : at + self.c.batch]
            at += self.c.batch
            loss = self.supervised(b)
            if semi:
                loss = loss + self.c.pseudo_weight * self.pseudo(b, near)
                loss = loss + self.c.consistency_weight * self.consistency(b)
            self.opt.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            self.opt.step()
            with torch.no_grad():
                for kept, p in zip(average.parameters(), self.model.parameters(), strict=True):
                    kept.mul_(self.c.average).add_(p.detach(), alpha=1 - self.c.average)
            trained.history.append(float(loss.item()))
        with torch.no_grad():  # bias-corrected: a short run is not pulled towards zero
            for kept in average.parameters():
                kept.div_(1 - self.c.average ** max(self.c.steps, 1))
        self.model.eval()
        return trained


def train_compat(
    features: np.ndarray,
    views: np.ndarray,
    item_roles: np.ndarray,
    labelled: Outfits,
    unlabelled: np.ndarray,
    config: CompatConfig,
) -> TrainedCompat:
    """``features`` (N, D) items' served features, ``views`` (N, V, D) their augmented views'
    features, ``item_roles`` (N,) role indices; ``labelled`` outfits over those rows;
    ``unlabelled`` the rows whose items a semi-supervised run may use without labels."""
    if len(labelled) < 2 or not (labelled.labels > 0).any():
        raise ValueError("training needs two labelled outfits, one of them compatible")
    return _Trainer(features, views, item_roles, labelled, unlabelled, config).run()
