"""Milvus adapter for the vector index. One code path for Milvus Lite (a local path or its
server's URI) and real Milvus servers: only features all of them share are used."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pymilvus import DataType, MilvusClient

from schemas.milvus import CollectionSpec, FieldKind
from stores.base import Hit

_TYPES = {
    FieldKind.VARCHAR: DataType.VARCHAR,
    FieldKind.INT64: DataType.INT64,
    FieldKind.FLOAT: DataType.FLOAT,
    FieldKind.JSON: DataType.JSON,
    FieldKind.ARRAY: DataType.ARRAY,
    FieldKind.FLOAT_VECTOR: DataType.FLOAT_VECTOR,
}

_INDEX_PARAMS: dict[str, dict[str, int]] = {
    "HNSW": {"M": 16, "efConstruction": 200},
    "FLAT": {},
    "IVF_FLAT": {"nlist": 128},
}


# No keepalive pings on idle connections: Milvus Lite's server answers a ping every 10 s
# (pymilvus's default) on an idle channel with GOAWAY "too_many_pings", and a client idle for
# a minute then failed to reconnect (seen in the click loop; milvus-lite issue #334).
GRPC_OPTIONS = {"grpc.keepalive_permit_without_calls": False}


def connect(uri: str, token: str = "", **kwargs: Any) -> MilvusClient:
    """A MilvusClient for any of our Milvus deployments (Lite path, Lite server, servers)."""
    return MilvusClient(uri=uri, token=token, grpc_options=GRPC_OPTIONS, **kwargs)


def drop_prefixed(client: MilvusClient, prefix: str) -> None:
    """Drop the aliases and collections whose names start with ``prefix`` (test and
    evaluation runs clean up what re-indexing created beside their collection)."""
    for alias in client.list_aliases().get("aliases", []):
        if alias.startswith(prefix):
            client.drop_alias(alias)
    for name in client.list_collections():
        if name.startswith(prefix):
            client.drop_collection(name)


def quote(value: str) -> str:
    """A Milvus string literal: JSON escaping is a subset Milvus's expression parser accepts."""
    return json.dumps(value)


def in_filter(field: str, values: Sequence[str]) -> str:
    return f"{field} in [{', '.join(quote(v) for v in values)}]"


class MilvusVectorIndex:
    def __init__(
        self,
        uri: str,
        collection: str,
        spec: CollectionSpec,
        *,
        token: str = "",
        index_type: str = "HNSW",
        batch_size: int = 500,
        search_consistency: str = "Strong",
    ) -> None:
        if index_type not in _INDEX_PARAMS:
            raise ValueError(f"unsupported index type {index_type}: use {sorted(_INDEX_PARAMS)}")
        self.client = connect(uri, token)
        self.collection = collection
        self.spec = spec
        self.index_type = index_type
        self.batch_size = batch_size
        # Strong: read-your-writes, but a Milvus server then waits up to a time tick (~200 ms)
        # per search; Bounded trades seconds of staleness for that latency.
        self.search_consistency = search_consistency
        self._pk = next(f.name for f in spec.fields if f.primary)

    def ensure(self) -> None:
        """Create the collection and its index if missing; load it for search."""
        if not self.client.has_collection(self.collection):
            schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
            for f in self.spec.fields:
                kwargs: dict[str, Any] = {}
                if f.max_length is not None:
                    kwargs["max_length"] = f.max_length
                if f.dim is not None:
                    kwargs["dim"] = f.dim
                if f.kind is FieldKind.ARRAY:
                    kwargs.update(element_type=DataType.VARCHAR, max_capacity=f.max_capacity)
                schema.add_field(f.name, _TYPES[f.kind], is_primary=f.primary, **kwargs)
            index = self.client.prepare_index_params()
            index.add_index(
                field_name=self.spec.vector_field,
                index_type=self.index_type,
                metric_type=self.spec.metric,
                params=_INDEX_PARAMS[self.index_type],
            )
            self.client.create_collection(
                self.collection, schema=schema, index_params=index, consistency_level="Strong"
            )
        else:
            self._check_fields()
        self.client.load_collection(self.collection)

    def _check_fields(self) -> None:
        """An existing collection from an older schema cannot take this code's rows: say so
        instead of failing on the first write."""
        described = self.client.describe_collection(self.collection)
        have = {f["name"] for f in described.get("fields", [])}
        missing = [f.name for f in self.spec.fields if f.name not in have]
        if missing:
            raise RuntimeError(
                f"Milvus collection {self.collection!r} predates fields {missing}: re-index into "
                "a new collection (STYLESTREAM_MILVUS_COLLECTION) or drop it and replay products"
            )

    def upsert(self, rows: Sequence[Mapping[str, Any]]) -> None:
        for start in range(0, len(rows), self.batch_size):
            self.client.upsert(
                self.collection, [dict(r) for r in rows[start : start + self.batch_size]]
            )

    def delete(self, product_ids: Sequence[str]) -> None:
        if product_ids:
            self.client.delete(self.collection, filter=in_filter(self._pk, product_ids))

    def _search_params(self, k: int) -> dict[str, Any]:
        if self.index_type == "HNSW":
            return {"metric_type": self.spec.metric, "params": {"ef": max(64, 2 * k)}}
        if self.index_type == "IVF_FLAT":
            return {"metric_type": self.spec.metric, "params": {"nprobe": 16}}
        return {"metric_type": self.spec.metric, "params": {}}

    def search(
        self,
        vectors: np.ndarray,
        k: int,
        filter_expr: str = "",
        offset: int = 0,
        fields: Sequence[str] | None = None,
    ) -> list[list[Hit]]:
        """``fields``: the scalar fields to return (default: all of them)."""
        if len(vectors) == 0:
            return []
        kwargs: dict[str, Any] = {}
        if offset:
            kwargs["offset"] = offset
        results = self.client.search(
            self.collection,
            data=np.asarray(vectors, dtype=np.float32).tolist(),
            limit=k,
            filter=filter_expr,
            output_fields=list(fields) if fields is not None else self.spec.scalar_fields,
            search_params=self._search_params(k + offset),
            anns_field=self.spec.vector_field,
            consistency_level=self.search_consistency,
            **kwargs,
        )
        return [
            [
                Hit(
                    product_id=str(hit.id),
                    score=float(hit.distance),
                    fields=dict(hit.get("entity") or {}),
                )
                for hit in hits
            ]
            for hits in results
        ]

    def get(
        self, product_ids: Sequence[str], with_vectors: bool = False
    ) -> dict[str, dict[str, Any]]:
        if not product_ids:
            return {}
        fields = self.spec.scalar_fields + ([self.spec.vector_field] if with_vectors else [])
        rows = self.client.query(
            self.collection, filter=in_filter(self._pk, product_ids), output_fields=fields
        )
        return {str(r[self._pk]): dict(r) for r in rows}

    def count(self) -> int:
        rows = self.client.query(self.collection, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def drop(self) -> None:
        if self.client.has_collection(self.collection):
            self.client.drop_collection(self.collection)

    def flush(self) -> None:
        """Seal what was written into indexed segments. Milvus Lite searches unflushed rows by
        brute force in Python (measured: 230-400 ms vs 40-80 ms flushed at 2000 rows)."""
        self.client.flush(self.collection)

    def ping(self) -> None:
        self.client.list_collections()

    def close(self) -> None:
        self.client.close()
