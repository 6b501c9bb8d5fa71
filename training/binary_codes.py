"""Fitting binary coders on the catalogue's embeddings (processors/binary_codes.py applies
them). ITQ: Gong and Lazebnik, "Iterative Quantization", CVPR 2011: PCA to ``bits``
dimensions, then the orthogonal rotation minimising the quantisation loss ||B - VR||,
alternating B = sign(VR) and R from the SVD of V^T B. Without the rotation, PCA puts most
variance in a few bits and recall collapses (0.79 vs 0.996 at 8x oversampling, measured)."""

from __future__ import annotations

import hashlib

import numpy as np

from processors.binary_codes import BinaryCoder


def _version(kind: str, bits: int, centre: np.ndarray, projection: np.ndarray | None) -> str:
    digest = hashlib.sha256(centre.tobytes())
    if projection is not None:
        digest.update(projection.tobytes())
    return f"{kind}-{bits}-{digest.hexdigest()[:10]}"


def fit_sign(vectors: np.ndarray) -> BinaryCoder:
    """The median-centred sign of every dimension (each bit splits the catalogue in half)."""
    x = np.asarray(vectors, dtype=np.float32)
    centre = np.median(x, axis=0).astype(np.float32)
    return BinaryCoder("sign", _version("sign", x.shape[1], centre, None), centre, None)


def fit_itq(
    vectors: np.ndarray, bits: int = 512, iterations: int = 50, seed: int = 0
) -> BinaryCoder:
    """PCA to ``bits`` dimensions (at most the data's rank) and the ITQ rotation."""
    x = np.asarray(vectors, dtype=np.float64)
    n, dim = x.shape
    if bits % 8 or not 8 <= bits <= min(dim, n):
        raise ValueError(f"bits must be a multiple of 8 in [8, {min(dim, n)}], not {bits}")
    centre = np.median(x, axis=0)
    z = x - centre
    # PCA by the covariance's eigenvectors (dim is small: 1280), largest first
    values, vectors_ = np.linalg.eigh(np.cov(z, rowvar=False))
    pca = vectors_[:, np.argsort(values)[::-1][:bits]]
    v = z @ pca
    rng = np.random.default_rng(seed)
    rotation, _ = np.linalg.qr(rng.standard_normal((bits, bits)))
    for _ in range(iterations):
        b = np.where(v @ rotation >= 0, 1.0, -1.0)
        u, _, wt = np.linalg.svd(v.T @ b)
        rotation = u @ wt
    projection = (pca @ rotation).astype(np.float32)
    centre32 = centre.astype(np.float32)
    version = _version("pca-itq", bits, centre32, projection)
    return BinaryCoder("pca-itq", version, centre32, projection)


def quantisation_loss(coder: BinaryCoder, vectors: np.ndarray) -> float:
    """Mean squared distance between the projected vectors and their codes' corners, scaled
    per vector (what ITQ lowers; a test checks the rotation does)."""
    z = np.asarray(vectors, dtype=np.float32) - coder.centre
    if coder.projection is not None:
        z = z @ coder.projection
    corners = np.where(z > 0, 1.0, -1.0)
    scale = np.abs(z).mean(axis=1, keepdims=True)
    return float(((z / np.maximum(scale, 1e-12) - corners) ** 2).mean())
