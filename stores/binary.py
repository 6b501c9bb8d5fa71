"""Binary search with a float rerank, as a VectorIndex: writes go to the float collection and to
its binary index (each row's code from the coder); a search takes the Hamming top
(k + offset) x oversampling under the same filters, then ranks those candidates by exact
cosine with their float vectors, read from the float collection by id or, where a cache is
given, kept in this process by (id, version) (stores/vector_cache.py). Everything above (the
writer, the search service, the neighbour vote, re-indexing) sees one index.

Why this shape: Milvus 2.3 allows one vector field per collection, and Milvus has no float
rerank of a binary search (milvus-io/milvus#33615), so the rerank is ours.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace

import numpy as np

from processors.binary_codes import BinaryCoder
from stores.base import Hit, IndexRow, VectorIndex
from stores.codes import CodeIndex
from stores.filters import Effort, Filters
from stores.vector_cache import VectorCache

Entry = tuple[IndexRow, np.ndarray]  # a candidate's row (no vector) and its vector

GET_CHUNK = 1000
MAX_CANDIDATES = 16384  # Milvus's top-k limit: the highest ceiling


def _unit(vectors: np.ndarray) -> np.ndarray:
    v = np.asarray(vectors, dtype=np.float32)
    unit: np.ndarray = v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)
    return unit


class BinaryRerankIndex:
    def __init__(
        self,
        floats: VectorIndex,
        codes: CodeIndex,
        coder: BinaryCoder,
        oversampling: int = 8,
        search_codes: bool = True,
        max_candidates: int = 4096,
        cache: VectorCache | None = None,
    ) -> None:
        """``search_codes`` False: searches go to the float collection (serving mode "float");
        writes reach the binary index either way, so switching modes needs no rebuild.
        ``cache``: candidates' vectors kept in this process by (id, version) (float16)."""
        if codes.bits != coder.bits:
            raise ValueError(f"the binary index holds {codes.bits}-bit codes, the coder makes "
                             f"{coder.bits}")  # fmt: skip
        if oversampling < 1:
            raise ValueError("oversampling must be at least 1")
        if not 1 <= max_candidates <= MAX_CANDIDATES:
            raise ValueError(f"max_candidates must be within 1..{MAX_CANDIDATES}")
        self.floats = floats
        self.codes = codes
        self.coder = coder
        self.oversampling = oversampling
        self.search_codes = search_codes
        self.max_candidates = max_candidates
        self.cache = cache

    def ensure(self) -> None:
        self.floats.ensure()
        self.codes.ensure()

    def upsert(self, rows: Sequence[IndexRow]) -> None:
        if not rows:
            return
        missing = [r.product_id for r in rows if r.embedding is None]
        if missing:
            raise ValueError(f"index rows without an embedding: {missing[:5]}")
        codes = self.coder.encode(np.stack([np.asarray(r.embedding) for r in rows]))
        self.floats.upsert(rows)
        self.codes.upsert(rows, codes)

    def delete(self, product_ids: Sequence[str]) -> None:
        self.codes.delete(product_ids)
        self.floats.delete(product_ids)

    def search(
        self,
        vectors: np.ndarray,
        k: int,
        filters: Filters | None = None,
        offset: int = 0,
        fields: Sequence[str] | None = None,
        effort: Effort | None = None,
    ) -> list[list[Hit]]:
        if len(vectors) == 0:
            return []
        if not self.search_codes:
            return self.floats.search(vectors, k, filters, offset, fields, effort)
        queries = _unit(vectors)
        over = effort.oversampling if effort and effort.oversampling else self.oversampling
        # a request's effort is the caller's; the ceiling is the server's (a cost cap)
        limit = max(k + offset, min(self.max_candidates, (k + offset) * over))
        nprobe = effort.nprobe if effort else None
        candidates = self.codes.search(self.coder.encode(queries), limit, filters, nprobe)
        # every query's candidates looked up once (queries of a batch share many)
        keys = list(dict.fromkeys(c for found in candidates for c in found))
        cached = self.cache.get_many(keys) if self.cache is not None else {}
        fetched = self._read([c.product_id for c in keys if c not in cached])
        return [
            self._rerank(q, [cached.get(c) or fetched.get(c.product_id) for c in found], k, offset)
            for q, found in zip(queries, candidates, strict=True)
        ]

    def _read(self, product_ids: Sequence[str]) -> dict[str, Entry]:
        """Rows and vectors from the float collection (cached for the next search), in reads of
        at most GET_CHUNK rows (1280-d floats: ~5 MB a read, far below gRPC's message limit)."""
        entries: dict[str, Entry] = {}
        for start in range(0, len(product_ids), GET_CHUNK):
            rows = self.floats.get(product_ids[start : start + GET_CHUNK], with_vectors=True)
            for pid, row in rows.items():
                if row.embedding is None:
                    continue
                if self.cache is not None:
                    entries[pid] = self.cache.put(row)
                else:
                    entries[pid] = (replace(row, embedding=None), np.asarray(row.embedding))
        return entries

    @staticmethod
    def _rerank(query: np.ndarray, entries: list[Entry | None], k: int, offset: int) -> list[Hit]:
        found = [e for e in entries if e is not None]
        if not found:
            return []
        scores = _unit(np.stack([vector for _, vector in found])) @ query
        order = np.argsort(-scores, kind="stable")[offset : offset + k]
        return [Hit(found[i][0], float(scores[i])) for i in order]

    def get(self, product_ids: Sequence[str], with_vectors: bool = False) -> dict[str, IndexRow]:
        return self.floats.get(product_ids, with_vectors)

    def count(self) -> int:
        return self.floats.count()

    def versions(self, batch: int = 5000) -> Iterator[dict[str, int]]:
        """The float collection's versions, with a product whose code is missing or of another
        version reported as version -1 (and a code without a float row as itself): the
        reconcile then rewrites or deletes it in both."""
        codes = {pid: v for page in self.codes.versions(batch) for pid, v in page.items()}
        for page in self.floats.versions(batch):
            yield {pid: v if codes.pop(pid, None) == v else -1 for pid, v in page.items()}
        if codes:
            yield codes

    def flush(self) -> None:
        self.floats.flush()

    def set_alias(self, alias: str) -> None:
        self.floats.set_alias(alias)

    def drop(self) -> None:
        self.codes.drop()
        self.floats.drop()

    def ping(self) -> None:
        self.floats.ping()
        self.codes.ping()

    def close(self) -> None:
        self.codes.close()
        self.floats.close()
