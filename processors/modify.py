"""Image + text modifier search ("this one, but in red"), the served half: the space the joint
model (training/modify_model.py) reads and answers in, and its ONNX graph at run time.

The *joined features* of an item: its unit base embedding beside its profile (attribute
confidences and colour shares, processors/text_features.py's layout, as a unit vector weighted
by PROFILE_WEIGHT), normalised. The embedding alone barely tells red from blue or stripes from
dots; the profile does, so a query vector in this space can ask for a colour and still keep the
shape. One function for the eval, the training and the API, so all three embed alike.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence

import numpy as np

from processors.colour import PALETTE_NAMES
from processors.embedding import onnx_session
from processors.text_features import ATTRIBUTE_KEYS, product_features
from processors.tokens import WordPiece

# the profile's weight beside the unit embedding (measured in `stylestream eval modify`: 1.0
# and 1.5 at 400 references; 1.5 kept)
PROFILE_WEIGHT = 1.5
MAX_MODIFIER_CHARS = 200
# the profile's slots (taxonomy keys, palette names) a model was trained on: one that read
# another layout is refused rather than fed misaligned slots
PROFILE_WIDTH = len(ATTRIBUTE_KEYS) + len(PALETTE_NAMES)
LAYOUT = hashlib.sha256("\n".join((*ATTRIBUTE_KEYS, *PALETTE_NAMES)).encode()).hexdigest()[:16]


def joined_features(
    attribute_scores: Mapping[str, float],
    colour_fractions: Mapping[str, float],
    base: np.ndarray,
    profile_weight: float = PROFILE_WEIGHT,
) -> np.ndarray:
    """One item's joined features (a unit vector of base dim + profile width)."""
    base = np.asarray(base, dtype=np.float32)
    embedding = base / max(float(np.linalg.norm(base)), 1e-6)
    profile = product_features(attribute_scores, colour_fractions, base)[: -len(base)]
    profile = profile / max(float(np.linalg.norm(profile)), 1e-6)
    joined = np.concatenate([embedding, profile_weight * profile])
    out: np.ndarray = (joined / np.linalg.norm(joined)).astype(np.float32)
    return out


def joined_batch(
    items: Sequence[tuple[Mapping[str, float], Mapping[str, float], np.ndarray]],
    profile_weight: float = PROFILE_WEIGHT,
) -> np.ndarray:
    """(attribute scores, colour shares, base embedding) per item -> (N, width)."""
    rows = [joined_features(a, c, b, profile_weight) for a, c, b in items]
    return np.stack(rows) if rows else np.zeros((0, 0), np.float32)


def embedding_part(queries: np.ndarray, base_dim: int) -> np.ndarray:
    """The query vectors' embedding part, normalised: what the image index is searched with
    (its candidates are then ranked on the whole joined features)."""
    part = queries[:, :base_dim]
    out: np.ndarray = part / np.maximum(np.linalg.norm(part, axis=1, keepdims=True), 1e-6)
    return out.astype(np.float32)


class ModifierError(ValueError):
    """The modifier text cannot be used (empty, too long, control characters)."""


class ModifierLayoutError(ValueError):
    """A modifier model trained on another feature layout than this code's."""


def check_modifier(text: str) -> str:
    """The words as they will be read and logged: whitespace collapsed, checked."""
    if any((ord(ch) < 32 and ch not in "\t\n\r") or 0x7F <= ord(ch) <= 0x9F for ch in text):
        raise ModifierError("the modifier text holds control characters")
    cleaned = " ".join(text.split())
    if not cleaned:
        raise ModifierError("the modifier text is empty")
    if len(cleaned) > MAX_MODIFIER_CHARS:
        raise ModifierError(f"the modifier text is longer than {MAX_MODIFIER_CHARS} characters")
    return cleaned


class ModifyEncoder:
    """The joint model's graph (training/modify_export.py): modifier word pieces and the
    reference's joined features in, the query's joined features out. The graph carries its
    vocabulary, the base dimension and the profile weight it was trained with."""

    def __init__(self, artifact: bytes, model_version: str, threads: int = 0) -> None:
        self.model_version = model_version
        self._session = onnx_session(artifact, threads)
        meta = self._session.get_modelmeta().custom_metadata_map
        self._pieces = WordPiece(json.loads(meta["wordpiece"]), int(meta["max_tokens"]))
        self.base_dim = int(meta["base_dim"])
        self.profile_weight = float(meta["profile_weight"])
        self.base_model_version = meta["base_model_version"]
        width = self._session.get_inputs()[2].shape[-1]
        if meta.get("layout") != LAYOUT or width != self.base_dim + PROFILE_WIDTH:
            raise ModifierLayoutError(
                f"modifier model {model_version} was trained on another feature layout "
                f"({meta.get('layout')}, width {width}) than this code's ({LAYOUT}, "
                f"{self.base_dim + PROFILE_WIDTH}): train it again"
            )

    def queries(self, texts: Sequence[str], references: np.ndarray) -> np.ndarray:
        if not texts:
            return np.zeros((0, references.shape[1]), np.float32)
        ids, mask = self._pieces.batch(list(texts))
        feeds = {"ids": ids, "mask": mask, "reference": references.astype(np.float32)}
        out: np.ndarray = self._session.run(None, feeds)[0]
        return out.astype(np.float32)
