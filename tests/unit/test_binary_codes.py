"""Binary codes: packing, the registry artifact, and what ITQ buys (on SYNTHETIC clustered
vectors whose variance, like the real features', sits in a few directions)."""

from __future__ import annotations

import numpy as np
import pytest

from processors.binary_codes import BinaryCoder, hamming
from training.binary_codes import fit_itq, fit_sign, quantisation_loss


def synthetic_embeddings(n: int = 3000, dim: int = 256, clusters: int = 30) -> np.ndarray:
    """SYNTHETIC: clusters under a power-law spectrum in a random basis (a few directions
    carry most variance, as in the real features), unit length."""
    rng = np.random.default_rng(3)
    spectrum = np.arange(1, dim + 1, dtype=np.float64) ** -1.0
    basis, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    centres = 3 * rng.standard_normal((clusters, dim)) * spectrum
    x = (centres[rng.integers(clusters, size=n)] + rng.standard_normal((n, dim)) * spectrum) @ basis
    out: np.ndarray = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    return out


def recall_after_rerank(coder: BinaryCoder, x: np.ndarray, queries: int, oversample: int) -> float:
    """Recall@10 of Hamming top (10 x oversample) reranked by exact cosine, against exact."""
    codes = coder.encode(x)
    found = 0
    for q in range(queries):
        exact = set(np.argsort(-(x @ x[q]))[:10])
        candidates = np.argsort(hamming(codes[q], codes), kind="stable")[: 10 * oversample]
        reranked = candidates[np.argsort(-(x[candidates] @ x[q]))[:10]]
        found += len(exact & set(reranked))
    return found / (10 * queries)


def test_codes_are_packed_bits_and_survive_the_registry() -> None:
    x = synthetic_embeddings(500, 64)
    coder = fit_itq(x, bits=32)
    codes = coder.encode(x)
    assert codes.shape == (500, 4) and codes.dtype == np.uint8 and coder.bytes_per_vector == 4
    again = BinaryCoder.from_bytes(coder.to_bytes())
    assert again.version == coder.version and again.kind == "pca-itq"
    assert np.array_equal(again.encode(x), codes)
    sign = fit_sign(x)
    assert sign.encode(x).shape == (500, 8)  # one bit per dimension
    assert np.array_equal(BinaryCoder.from_bytes(sign.to_bytes()).encode(x), sign.encode(x))
    assert hamming(codes[0], codes)[0] == 0
    with pytest.raises(ValueError):
        coder.encode(x[:, :10])
    with pytest.raises(ValueError):
        fit_itq(x, bits=12)


def test_the_itq_rotation_lowers_the_loss_and_keeps_recall_where_plain_pca_loses_it() -> None:
    x = synthetic_embeddings()
    itq = fit_itq(x, bits=128)
    # the same PCA without the rotation
    assert itq.projection is not None
    centre = itq.centre
    values, vectors = np.linalg.eigh(np.cov(x - centre, rowvar=False))
    pca = BinaryCoder("pca-itq", "pca-only", centre, vectors[:, np.argsort(values)[::-1][:128]])
    assert quantisation_loss(itq, x) < quantisation_loss(pca, x)
    with_itq = recall_after_rerank(itq, x, 200, oversample=8)
    without = recall_after_rerank(pca, x, 200, oversample=8)
    assert with_itq >= 0.9 and with_itq > without + 0.15, (with_itq, without)
    # more oversampling never hurts
    assert recall_after_rerank(itq, x, 200, oversample=16) >= with_itq


def test_encoding_in_blocks_matches_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    import processors.binary_codes as codes

    x = synthetic_embeddings(300, 64)  # SYNTHETIC
    coder = fit_itq(x, 32)
    whole = coder.encode(x)
    monkeypatch.setattr(codes, "ENCODE_BLOCK", 7)
    assert np.array_equal(coder.encode(x), whole)
    assert np.array_equal(whole, np.packbits((x - coder.centre) @ coder.projection > 0, axis=1))
