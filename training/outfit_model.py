"""Outfit compatibility (issue 17, after Revanur et al., RecSys 2021): type-aware item
embeddings over the served image features (processors/modify.joined_features) and a pair head
over each role pair's masked subspace, trained on a fraction of labelled outfits. A pair's
incompatibility comes from a small network, not a distance (colour harmony on a wheel is not
metric), and an outfit scores minus their soft maximum (one clash spoils it): every fraction's
FITB rose with it, full supervision's too (NOTES.md).

Supervised: the labelled outfits' labels (a logistic loss on the outfit score) and a margin
between each compatible outfit and itself with one item swapped for a random labelled item of
the same role. Semi-supervised adds, from the unlabelled items (no label read):
- a pseudo-positive per compatible outfit in the batch: every item swapped for one of its
  nearest unlabelled items of the same role (nearest in the served features), and a
  pseudo-negative of random unlabelled items in the same roles, held apart by the margin;
- consistency: outfits of unlabelled items score alike read from the items' features or from
  their augmented views' (another rendering, a flip or a crop: colour and pattern kept), so
  what survives the augmentation is what compatibility is learned on (the Pi-model's
  consistency, on outfit scores);
- self-training: the model so trained labels the unlabelled outfits it is surest of (both
  ends of its scores) and a second one learns from them beside the labelled outfits. Done
  online by a Mean Teacher it fed its own mistakes back and hurt; done once, from a finished
  model, it helped (NOTES.md), as did the pair head. InfoNCE between views and neighbours in
  the learned embedding were measured and dropped.
Both return the weights' moving average: one run's last steps vary a lot on a few hundred
outfits, their average much less.

The served half (processors/outfit_compat.py) scores with the exported encoder and pair head.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from processors.outfit_compat import GAP_SCALE, N_ROLES, PRODUCT_SCALE, CompatHead


@dataclass(frozen=True)
class CompatConfig:
    steps: int = 800
    batch: int = 64  # outfits
    dim: int = 64
    hidden: int = 256
    pair_hidden: int = 64  # the pair head's width
    tau: float = 0.3  # the soft maximum's temperature over an outfit's pairs
    lr: float = 2e-3
    weight_decay: float = 1e-3
    dropout: float = 0.2
    margin: float = 0.3
    semi: bool = False
    pseudo_weight: float = 1.0
    consistency_weight: float = 1.0
    neighbours: int = 3  # a pseudo-positive's item: one of this many nearest
    average: float = 0.99  # the returned weights' moving-average decay per step
    # semi: the share of the unlabelled outfits at each end of the first model's scores taken
    # as pseudo-labels for a second model (0: one model)
    self_training: float = 0.3
    seed: int = 0


class TypeAwareCompat(nn.Module):
    """An item encoder into one space, a mask per role pair (Vasileva et al.'s conditional
    masks) and a pair head over the masked pair (processors/outfit_compat.CompatHead serves
    it): a pair's incompatibility, an outfit's score minus their soft maximum."""

    def __init__(
        self, features: int, dim: int, hidden: int, dropout: float, pair_hidden: int = 64,
        tau: float = 0.3,
    ) -> None:  # fmt: skip
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, dim)
        )
        self.masks = nn.Parameter(torch.zeros(N_ROLES, N_ROLES, dim))
        self.pair_in = nn.Linear(2 * dim, pair_hidden)
        self.pair_out = nn.Linear(pair_hidden, 1)
        self.tau = tau
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
        """``e`` (B, K, dim) items' embeddings; higher: more compatible."""
        m = self.pair_masks()[roles[:, :, None], roles[:, None, :]]
        a, b = e[:, :, None] * m, e[:, None, :] * m
        h = torch.cat([a * b * PRODUCT_SCALE, (a - b).abs() * GAP_SCALE], -1)
        d = nn.functional.softplus(self.pair_out(torch.relu(self.pair_in(h)))).squeeze(-1)
        k = e.shape[1]
        pairs = valid[:, :, None] & valid[:, None, :] & ~torch.eye(k, dtype=torch.bool)
        z = torch.where(pairs, d / self.tau, torch.full_like(d, -1e9)).flatten(1)
        count = pairs.sum((1, 2)).clamp(min=1).float()
        out = -self.tau * (torch.logsumexp(z, 1) - torch.log(count))
        return torch.where(pairs.any(-1).any(-1), out, torch.zeros_like(out))

    def head(self) -> CompatHead:
        with torch.no_grad():
            first, last = self.pair_in, self.pair_out
            return CompatHead(
                masks=self.pair_masks().numpy().copy(),
                w1=first.weight.T.numpy().copy(), b1=first.bias.numpy().copy(),
                w2=last.weight[0].numpy().copy(), b2=float(last.bias[0]), tau=self.tau,
            )  # fmt: skip


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

    @classmethod
    def unlabelled(cls, outfits: Sequence[Sequence[int]], roles: np.ndarray) -> Outfits:
        """Outfits whose labels no one reads (all zero)."""
        return cls.of(outfits, roles, [False] * len(outfits))

    def __len__(self) -> int:
        return len(self.items)

    def __add__(self, other: Outfits) -> Outfits:
        k = max(self.items.shape[1], other.items.shape[1])

        def pad(a: np.ndarray) -> np.ndarray:
            return np.pad(a, ((0, 0), (0, k - a.shape[1])))

        return Outfits(
            np.concatenate([pad(self.items), pad(other.items)]),
            np.concatenate([pad(self.roles), pad(other.roles)]),
            np.concatenate([pad(self.valid), pad(other.valid)]),
            np.concatenate([self.labels, other.labels]),
        )


@dataclass
class TrainedCompat:
    model: TypeAwareCompat
    history: list[float] = field(default_factory=list)
    pseudo_labelled: int = 0  # unlabelled outfits a first model labelled for this one

    def outfit_scores(self, features: np.ndarray, outfits: Outfits) -> np.ndarray:
        self.model.eval()
        with torch.no_grad():
            e = self.model.embed(torch.from_numpy(features.astype(np.float32)))
            out: np.ndarray = self.model.outfit_scores(
                e[torch.from_numpy(outfits.items)], torch.from_numpy(outfits.roles),
                torch.from_numpy(outfits.valid),
            ).numpy()  # fmt: skip
        return out

    def embeddings(self, features: np.ndarray) -> np.ndarray:
        self.model.eval()
        with torch.no_grad():
            out: np.ndarray = self.model.embed(torch.from_numpy(features)).numpy()
        return out

    def head(self) -> CompatHead:
        return self.model.head()


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
        self.model = TypeAwareCompat(features.shape[1], config.dim, config.hidden, config.dropout,
                                     config.pair_hidden, config.tau)  # fmt: skip
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


def pseudo_labelled(
    teacher: TrainedCompat, features: np.ndarray, pool: Outfits, share: float
) -> Outfits:
    """The pool's outfits the teacher is surest of: the ``share`` it scores highest labelled
    compatible, the ``share`` it scores lowest not (no label of the pool is read; by rank, so
    ties never tip the two apart); none when the teacher's scores are not all finite."""
    if not 0 < share < 0.5:
        raise ValueError("a share in (0, 0.5)")
    scores = teacher.outfit_scores(features, pool)
    n = int(share * len(scores))
    if not np.isfinite(scores).all():
        n = 0
    order = np.argsort(scores, kind="stable")
    keep = np.concatenate([order[:n], order[len(order) - n :]])
    labels = np.repeat(np.array([0.0, 1.0], np.float32), n)
    return Outfits(pool.items[keep], pool.roles[keep], pool.valid[keep], labels)


def train_compat(
    features: np.ndarray,
    views: np.ndarray,
    item_roles: np.ndarray,
    labelled: Outfits,
    unlabelled: np.ndarray,
    config: CompatConfig,
    unlabelled_outfits: Sequence[Sequence[int]] = (),
) -> TrainedCompat:
    """``features`` (N, D) items' served features, ``views`` (N, V, D) their augmented views'
    features, ``item_roles`` (N,) role indices; ``labelled`` outfits over those rows;
    ``unlabelled`` the rows whose items a semi-supervised run may use without labels, and
    ``unlabelled_outfits`` the outfits it may label itself (self-training: a first model
    labels those it is surest of and a second learns from them beside the labelled ones; at
    10 % of the labels its pseudo-labels were 96 % right, the stylist's labels 90 %)."""
    if len(labelled) < 2 or not (labelled.labels > 0).any():
        raise ValueError("training needs two labelled outfits, one of them compatible")
    first = _Trainer(features, views, item_roles, labelled, unlabelled, config).run()
    if not (config.semi and config.self_training > 0 and len(unlabelled_outfits) >= 2):
        return first
    pool = Outfits.unlabelled(unlabelled_outfits, item_roles)
    pseudo = pseudo_labelled(first, features, pool, config.self_training)
    if not len(pseudo):
        return first
    second = _Trainer(features, views, item_roles, labelled + pseudo, unlabelled, config).run()
    second.pseudo_labelled = len(pseudo)
    return second
