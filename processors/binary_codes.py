"""Binary codes of embeddings, for a Hamming index searched before an exact float rerank
(Alibaba's visual search keeps such a hash index; issue 14).

A code is the sign of ``(x - centre) @ projection``, packed 8 bits to a byte. The fitter
(training/binary_codes.py) makes two kinds: ``sign`` (projection: none, the median-centred
sign of every dimension) and ``pca-itq`` (projection: PCA to ``bits`` dimensions composed
with the ITQ rotation that best aligns them with the hypercube's corners). Pure numpy, so
the worker and the API apply a coder the registry hands them without the training code.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import numpy as np

KINDS = ("sign", "pca-itq")


ENCODE_BLOCK = 65_536  # rows: 1M x 1280-d at once would hold ~10 GB of temporaries


@dataclass(frozen=True, eq=False)
class BinaryCoder:
    kind: str
    version: str
    centre: np.ndarray  # (dim,)
    projection: np.ndarray | None  # (dim, bits); None: the identity (sign codes)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown code kind {self.kind!r} (one of {KINDS})")
        if self.bits % 8:
            raise ValueError(f"a code has a whole number of bytes, not {self.bits} bits")

    @property
    def dim(self) -> int:
        return int(self.centre.shape[0])

    @property
    def bits(self) -> int:
        return self.dim if self.projection is None else int(self.projection.shape[1])

    @property
    def bytes_per_vector(self) -> int:
        return self.bits // 8

    def encode(self, vectors: np.ndarray) -> np.ndarray:
        """(n, dim) float -> (n, bits / 8) uint8, the most significant bit first."""
        x = np.asarray(vectors, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"expected (n, {self.dim}) vectors, got {x.shape}")
        out = np.empty((len(x), self.bits // 8), dtype=np.uint8)
        for start in range(0, len(x), ENCODE_BLOCK):  # bounded temporaries at any n
            z = x[start : start + ENCODE_BLOCK] - self.centre
            if self.projection is not None:
                z = z @ self.projection
            out[start : start + len(z)] = np.packbits(z > 0, axis=1)
        return out

    def to_bytes(self) -> bytes:
        """The artifact the registry keeps (npz: the arrays, and the kind and version)."""
        out = io.BytesIO()
        meta = json.dumps({"kind": self.kind, "version": self.version}).encode()
        arrays: dict[str, np.ndarray] = {
            "meta": np.frombuffer(meta, dtype=np.uint8),
            "centre": self.centre.astype(np.float32),
        }
        if self.projection is not None:
            arrays["projection"] = self.projection.astype(np.float32)
        np.savez(out, allow_pickle=False, **arrays)
        return out.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> BinaryCoder:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            meta = json.loads(bytes(z["meta"]).decode())
            projection = z["projection"] if "projection" in z.files else None
            return cls(meta["kind"], meta["version"], z["centre"], projection)


def hamming(query: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Hamming distances from one packed code (bytes,) to many (n, bytes)."""
    distances: np.ndarray = np.unpackbits(np.bitwise_xor(codes, query), axis=1).sum(axis=1)
    return distances
