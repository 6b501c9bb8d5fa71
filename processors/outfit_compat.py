"""Outfit compatibility, the served half (issue 17): the role-pair masked space the
compatibility model (training/outfit_model.py) learns, scored in numpy so the API, the CLI and
the eval score alike.

Two items are compatible when close in their role pair's masked subspace; an outfit's score is
minus the mean masked squared distance over its pairs (higher: goes together better).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np

from processors.embedding import onnx_session
from processors.modify import LAYOUT, PROFILE_WIDTH
from schemas.outfits import ROLES

N_ROLES = len(ROLES)
ROLE_INDEX = {role: i for i, role in enumerate(ROLES)}


def outfit_score(embeddings: np.ndarray, roles: Sequence[int], masks: np.ndarray) -> float:
    """``embeddings`` (K, dim) of one outfit's items, ``roles`` their role indices,
    ``masks`` (roles, roles, dim)."""
    k = len(embeddings)
    if k < 2:
        return 0.0
    total = 0.0
    for i in range(k):
        for j in range(k):
            if i != j:
                d = (embeddings[i] - embeddings[j]) * masks[roles[i], roles[j]]
                total += float(d @ d)
    return -total / (k * (k - 1))


def pair_scores(
    anchor: np.ndarray, anchor_role: int, candidates: np.ndarray, candidate_role: int,
    masks: np.ndarray,
) -> np.ndarray:  # fmt: skip
    """Each candidate's score beside the anchor (an outfit of two)."""
    d = (candidates - anchor[None, :]) * masks[anchor_role, candidate_role][None, :]
    out: np.ndarray = -(d * d).sum(axis=1)
    return out


class CompatLayoutError(ValueError):
    """A compatibility model trained on another feature layout or role list than this code's."""


class CompatEncoder:
    """The compatibility model's graph (training/outfit_export.py): joined features in, unit
    embeddings out; its masks, base dimension and profile weight come with it."""

    def __init__(self, artifact: bytes, model_version: str, threads: int = 0) -> None:
        self.model_version = model_version
        self._session = onnx_session(artifact, threads)
        meta = self._session.get_modelmeta().custom_metadata_map
        self.base_dim = int(meta["base_dim"])
        self.profile_weight = float(meta["profile_weight"])
        self.base_model_version = meta["base_model_version"]
        self.masks = np.asarray(json.loads(meta["masks"]), np.float32)
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

    def embed(self, features: np.ndarray) -> np.ndarray:
        if not len(features):
            return np.zeros((0, self.masks.shape[-1]), np.float32)
        out: np.ndarray = self._session.run(None, {"features": features.astype(np.float32)})[0]
        return out
