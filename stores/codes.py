"""The binary index: each product's packed code (processors/binary_codes.py) with the fields the
neutral filters read, searched by Hamming distance. A Milvus adapter (a binary collection,
BIN_IVF_FLAT or BIN_FLAT: Milvus servers and Lite 2.5, not Lite 3) and its in-memory twin,
proved alike by tests/contract/test_codes.py. The float rerank on top is stores/binary.py's.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple, Protocol

import numpy as np
from pymilvus.exceptions import MilvusException

from processors.binary_codes import hamming
from schemas.milvus import CollectionSpec, code_collection
from stores.base import IndexRow
from stores.filters import Filters
from stores.memory import matches
from stores.milvus import (
    MilvusConfig,
    connect,
    count_rows,
    expression,
    filter_fields,
    in_filter,
    pymilvus_schema,
    row_versions,
)


class BinaryVectorsUnsupported(RuntimeError):
    """This Milvus cannot hold binary vectors (Milvus Lite 3.x)."""


class Candidate(NamedTuple):
    """A Hamming neighbour: its product and the version its code was written for (a version's
    vector never changes, so the rerank may cache it by this key)."""

    product_id: str
    version: int


class CodeIndex(Protocol):
    @property
    def bits(self) -> int: ...

    def ensure(self) -> None: ...

    def upsert(self, rows: Sequence[IndexRow], codes: np.ndarray) -> None:
        """``codes[i]`` (packed, bits / 8 bytes) is ``rows[i]``'s; upsert replaces."""
        ...

    def delete(self, product_ids: Sequence[str]) -> None: ...

    def search(
        self,
        codes: np.ndarray,
        limit: int,
        filters: Filters | None = None,
        nprobe: int | None = None,
    ) -> list[list[Candidate]]:
        """Per query code, the ``limit`` nearest by Hamming distance, nearest first;
        ``nprobe`` overrides the configured one where the index has lists."""
        ...

    def count(self) -> int: ...

    def versions(self, batch: int = 5000) -> Iterator[dict[str, int]]: ...

    def drop(self) -> None: ...

    def ping(self) -> None: ...

    def close(self) -> None: ...


def code_collection_name(collection: str, coder_version: str) -> str:
    """The binary index of ``collection`` for one coder (Milvus names: letters, digits, _)."""
    return f"{collection}__codes_{re.sub(r'[^A-Za-z0-9]+', '_', coder_version)}"[:255]


def _check(rows: Sequence[IndexRow], codes: np.ndarray, bits: int) -> np.ndarray:
    codes = np.asarray(codes, dtype=np.uint8)
    if codes.shape != (len(rows), bits // 8):
        raise ValueError(f"expected ({len(rows)}, {bits // 8}) packed codes, got {codes.shape}")
    return codes


@dataclass(frozen=True)
class CodeIndexConfig:
    index_type: str = "BIN_IVF_FLAT"  # or BIN_FLAT (exact Hamming)
    nlist: int = 1024
    nprobe: int = 32


class MilvusCodeIndex:
    def __init__(
        self, config: MilvusConfig, collection: str, bits: int, codes: CodeIndexConfig
    ) -> None:
        if codes.index_type not in ("BIN_IVF_FLAT", "BIN_FLAT"):
            raise ValueError(f"unsupported binary index {codes.index_type}")
        self.client = connect(config.uri, config.token)
        self.collection = collection
        self.spec: CollectionSpec = code_collection(bits)
        self.config = codes
        self.batch_size = config.batch_size
        self.search_consistency = config.search_consistency
        self._bits = bits

    @property
    def bits(self) -> int:
        return self._bits

    def ensure(self) -> None:
        if not self.client.has_collection(self.collection):
            index = self.client.prepare_index_params()
            params = (
                {"nlist": self.config.nlist} if self.config.index_type == "BIN_IVF_FLAT" else {}
            )
            index.add_index(
                field_name=self.spec.vector_field,
                index_type=self.config.index_type,
                metric_type=self.spec.metric,
                params=params,
            )
            try:
                self.client.create_collection(
                    self.collection,
                    schema=pymilvus_schema(self.client, self.spec),
                    index_params=index,
                    consistency_level="Strong",
                )
            except MilvusException as exc:
                if "binary" in str(exc).lower() or "BINARY_VECTOR" in str(exc):
                    raise BinaryVectorsUnsupported(
                        f"this Milvus cannot hold binary vectors ({exc.message}): serve the "
                        "binary index from a Milvus server (STYLESTREAM_MILVUS_URI)"
                    ) from exc
                raise
        self.client.load_collection(self.collection)

    def upsert(self, rows: Sequence[IndexRow], codes: np.ndarray) -> None:
        packed = _check(rows, codes, self._bits)
        entities = [
            {**filter_fields(r), "code": bytes(c)} for r, c in zip(rows, packed, strict=True)
        ]
        for start in range(0, len(entities), self.batch_size):
            self.client.upsert(self.collection, entities[start : start + self.batch_size])

    def delete(self, product_ids: Sequence[str]) -> None:
        if product_ids:
            self.client.delete(self.collection, filter=in_filter("product_id", product_ids))

    def search(
        self,
        codes: np.ndarray,
        limit: int,
        filters: Filters | None = None,
        nprobe: int | None = None,
    ) -> list[list[Candidate]]:
        if len(codes) == 0:
            return []
        params: dict[str, Any] = {}
        if self.config.index_type == "BIN_IVF_FLAT":
            # a request may ask for more lists than there are: it gets all of them
            params["nprobe"] = min(nprobe or self.config.nprobe, self.config.nlist)
        results = self.client.search(
            self.collection,
            data=[bytes(c) for c in np.asarray(codes, dtype=np.uint8)],
            limit=limit,
            filter=expression(filters),
            output_fields=["version"],
            search_params={"metric_type": self.spec.metric, "params": params},
            anns_field=self.spec.vector_field,
            consistency_level=self.search_consistency,
        )
        return [
            [Candidate(str(hit.id), int((hit.get("entity") or {})["version"])) for hit in hits]
            for hits in results
        ]

    def count(self) -> int:
        return count_rows(self.client, self.collection)

    def versions(self, batch: int = 5000) -> Iterator[dict[str, int]]:
        return row_versions(self.client, self.collection, "product_id", batch)

    def drop(self) -> None:
        if self.client.has_collection(self.collection):
            self.client.drop_collection(self.collection)

    def ping(self) -> None:
        self.client.get_load_state(self.collection)

    def close(self) -> None:
        self.client.close()


class MemoryCodeIndex:
    def __init__(self, bits: int) -> None:
        self._bits = bits
        self._rows: dict[str, tuple[IndexRow, np.ndarray]] = {}
        self._lock = threading.Lock()

    @property
    def bits(self) -> int:
        return self._bits

    def ensure(self) -> None:
        pass

    def upsert(self, rows: Sequence[IndexRow], codes: np.ndarray) -> None:
        packed = _check(rows, codes, self._bits)
        with self._lock:
            for row, code in zip(rows, packed, strict=True):
                self._rows[row.product_id] = (replace(row, embedding=None), code.copy())

    def delete(self, product_ids: Sequence[str]) -> None:
        with self._lock:
            for pid in product_ids:
                self._rows.pop(pid, None)

    def search(
        self,
        codes: np.ndarray,
        limit: int,
        filters: Filters | None = None,
        nprobe: int | None = None,  # exact: nothing to trade
    ) -> list[list[Candidate]]:
        with self._lock:
            kept = sorted(  # by id: ties in distance come back in id order, deterministically
                (Candidate(pid, row.version), code)
                for pid, (row, code) in self._rows.items()
                if matches(filters, row)
            )
        if not kept:
            return [[] for _ in codes]
        ids = [key for key, _ in kept]
        stack = np.stack([code for _, code in kept])
        out = []
        for query in np.asarray(codes, dtype=np.uint8):
            order = np.argsort(hamming(query, stack), kind="stable")
            out.append([ids[i] for i in order[:limit]])
        return out

    def count(self) -> int:
        with self._lock:
            return len(self._rows)

    def versions(self, batch: int = 5000) -> Iterator[dict[str, int]]:
        with self._lock:
            items = sorted((pid, row.version) for pid, (row, _) in self._rows.items())
        for start in range(0, len(items), batch):
            yield dict(items[start : start + batch])

    def drop(self) -> None:
        with self._lock:
            self._rows.clear()

    def ping(self) -> None:
        pass

    def close(self) -> None:
        pass
