"""Outfit compatibility, the served half (issue 17): the pair scorer the compatibility model
(training/outfit_model.py) learns, in numpy so the API, the CLI and the eval score alike.

A pair of items is read in its role pair's masked subspace, and a small network over the
masked pair's product and gap gives its incompatibility: colour harmony on a wheel (one colour,
neighbours or opposites go, two steps apart clash) or two patterns clashing are no distance, so
a distance alone could not hold them. An outfit's score is minus a soft maximum of its pairs'
incompatibilities: one clashing pair spoils an outfit however well the rest go.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from processors.embedding import onnx_session
from processors.modify import LAYOUT, PROFILE_WIDTH
from schemas.outfits import ROLES

N_ROLES = len(ROLES)
ROLE_INDEX = {role: i for i, role in enumerate(ROLES)}
# a unit embedding's elementwise product and gap are small: scaled to the head's working range
PRODUCT_SCALE = 8.0
GAP_SCALE = 4.0
SCORING = "pair-head-softmax-v1"  # what a graph's head metadata must say to be read


@dataclass(frozen=True)
class CompatHead:
    """Role-pair masks (roles, roles, dim), the pair network (2*dim -> hidden -> 1, softplus)
    and the soft maximum's temperature."""

    masks: np.ndarray
    w1: np.ndarray  # (2*dim, hidden)
    b1: np.ndarray  # (hidden,)
    w2: np.ndarray  # (hidden,)
    b2: float
    tau: float

    def incompatibility(
        self, a: np.ndarray, a_roles: np.ndarray, b: np.ndarray, b_roles: np.ndarray
    ) -> np.ndarray:
        """Row-wise pairs: ``a``, ``b`` (n, dim) and their role indices (n,) -> (n,) >= 0."""
        m = self.masks[a_roles, b_roles]
        x, y = a * m, b * m
        h = np.concatenate([x * y * PRODUCT_SCALE, np.abs(x - y) * GAP_SCALE], axis=-1)
        z = np.maximum(h @ self.w1 + self.b1, 0.0) @ self.w2 + self.b2
        out: np.ndarray = np.logaddexp(0.0, z)
        return out

    def outfit_score(self, embeddings: np.ndarray, roles: Sequence[int]) -> float:
        """``embeddings`` (K, dim) of one outfit's items; higher: goes together better."""
        k = len(embeddings)
        if k < 2:
            return 0.0
        i, j = np.triu_indices(k, 1)
        r = np.asarray(roles)
        d = self.incompatibility(embeddings[i], r[i], embeddings[j], r[j]) / self.tau
        top = float(d.max())
        return -self.tau * (top + float(np.log(np.exp(d - top).sum())) - float(np.log(len(d))))

    def pair_scores(
        self, anchor: np.ndarray, anchor_role: int, candidates: np.ndarray, candidate_role: int
    ) -> np.ndarray:
        """Each candidate's score beside the anchor (an outfit of two)."""
        n = len(candidates)
        out: np.ndarray = -self.incompatibility(
            np.repeat(anchor[None, :], n, axis=0), np.full(n, anchor_role),
            candidates, np.full(n, candidate_role),
        )  # fmt: skip
        return out

    def to_json(self) -> str:
        return json.dumps({
            "scoring": SCORING, "tau": self.tau, "b2": self.b2,
            **{k: np.round(getattr(self, k), 6).tolist() for k in ("masks", "w1", "b1", "w2")},
        })  # fmt: skip

    @classmethod
    def from_json(cls, text: str) -> CompatHead:
        raw = json.loads(text)
        if not isinstance(raw, dict) or raw.get("scoring") != SCORING:
            raise ValueError(f"no {SCORING} head")
        head = cls(**{k: np.asarray(raw[k], np.float32) for k in ("masks", "w1", "b1", "w2")},
                   b2=float(raw["b2"]), tau=float(raw["tau"]))  # fmt: skip
        head.check()
        return head

    def check(self) -> None:
        """Shapes that fit, finite numbers, symmetric masks: a head that loads scores."""
        m, w1 = self.masks, self.w1
        dim = m.shape[-1] if m.ndim == 3 else -1
        if (
            m.shape[:2] != (N_ROLES, N_ROLES)
            or w1.shape[:1] != (2 * dim,)
            or w1.ndim != 2
            or self.b1.shape != (w1.shape[1],)
            or self.w2.shape != (w1.shape[1],)
        ):
            raise ValueError("the head's shapes do not fit together")
        arrays = (m, w1, self.b1, self.w2, np.array([self.b2, self.tau]))
        if not all(np.isfinite(a).all() for a in arrays) or self.tau <= 0:
            raise ValueError("the head holds a non-finite number or a temperature <= 0")
        if not np.allclose(m, m.transpose(1, 0, 2)):
            raise ValueError("the head's role-pair masks are not symmetric")


class CompatLayoutError(ValueError):
    """A compatibility model trained on another feature layout or role list than this code's."""


class CompatEncoder:
    """The compatibility model's graph (training/outfit_export.py): joined features in, unit
    embeddings out; its pair head, base dimension and profile weight come with it."""

    def __init__(self, artifact: bytes, model_version: str, threads: int = 0) -> None:
        self.model_version = model_version
        self._session = onnx_session(artifact, threads)
        meta = self._session.get_modelmeta().custom_metadata_map
        self.base_dim = int(meta["base_dim"])
        self.profile_weight = float(meta["profile_weight"])
        self.base_model_version = meta["base_model_version"]
        width = self._session.get_inputs()[0].shape[-1]
        roles = json.loads(meta.get("roles", "[]"))
        if (
            meta.get("layout") != LAYOUT
            or width != self.base_dim + PROFILE_WIDTH
            or roles != list(ROLES)
        ):
            raise CompatLayoutError(
                f"compatibility model {model_version} was trained on another feature layout or "
                f"role list ({meta.get('layout')}, width {width}, roles {roles}) than this "
                f"code's ({LAYOUT}, {self.base_dim + PROFILE_WIDTH}, {list(ROLES)}): train it "
                "again"
            )
        try:
            self.head = CompatHead.from_json(meta.get("head", "{}"))
        except (ValueError, KeyError, TypeError) as exc:
            raise CompatLayoutError(
                f"compatibility model {model_version} carries no pair head this code reads "
                f"({exc}): train it again"
            ) from exc

    def embed(self, features: np.ndarray) -> np.ndarray:
        if not len(features):
            return np.zeros((0, self.head.masks.shape[-1]), np.float32)
        out: np.ndarray = self._session.run(None, {"features": features.astype(np.float32)})[0]
        return out
