"""Milvus adapter for the vector index. One code path for Milvus Lite (a local path or its
server's URI) and real Milvus servers: only features all of them share are used."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pymilvus import DataType, MilvusClient
from pymilvus.client.types import LoadState

from schemas.milvus import CollectionSpec, FieldKind, product_collection
from stores.base import Hit, IndexRow, narrow_fields
from stores.filters import Effort, Filters

_TYPES = {
    FieldKind.VARCHAR: DataType.VARCHAR,
    FieldKind.INT64: DataType.INT64,
    FieldKind.FLOAT: DataType.FLOAT,
    FieldKind.JSON: DataType.JSON,
    FieldKind.ARRAY: DataType.ARRAY,
    FieldKind.FLOAT_VECTOR: DataType.FLOAT_VECTOR,
    FieldKind.BINARY_VECTOR: DataType.BINARY_VECTOR,
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


@dataclass(frozen=True)
class MilvusConfig:
    """What the adapter needs to reach a Milvus (Lite path, Lite server or server URI)."""

    uri: str
    token: str = ""
    index_type: str = "HNSW"  # HNSW | FLAT | IVF_FLAT
    # Strong: read-your-writes, but a Milvus server then waits up to a time tick (~200 ms)
    # per search; Bounded trades seconds of staleness for that latency.
    search_consistency: str = "Strong"
    batch_size: int = 500


def quote(value: str) -> str:
    """A Milvus string literal: JSON escaping is a subset Milvus's expression parser accepts."""
    return json.dumps(value)


def in_filter(field: str, values: Sequence[str]) -> str:
    return f"{field} in [{', '.join(quote(v) for v in values)}]"


def expression(filters: Filters | None) -> str:
    """The neutral filters as a Milvus boolean expression: every value is quoted or a number,
    never spliced raw."""
    if filters is None:
        return ""
    parts = []
    if filters.category is not None:
        parts.append(f"category == {quote(filters.category)}")
    if filters.colour is not None:
        parts.append(f"primary_colour == {quote(filters.colour)}")
    if filters.min_price is not None:
        parts.append(f"price >= {float(filters.min_price)!r}")
    if filters.max_price is not None:
        parts.append(f"price <= {float(filters.max_price)!r}")
    if filters.version is not None:
        parts.append(f"version == {int(filters.version)}")
    for keys in filters.attribute_groups():
        parts.append(f"array_contains_any(attributes, [{', '.join(quote(k) for k in keys)}])")
    return " and ".join(parts)


def filter_fields(row: IndexRow) -> dict[str, Any]:
    """The fields ``expression`` filters on, in the collections' names (the product collection
    and its binary index both hold them)."""
    return {
        "product_id": row.product_id,
        "version": row.version,
        "category": row.category,
        "price": row.price,
        "primary_colour": row.primary_colour,
        "attributes": list(row.attributes),
    }


def to_entity(row: IndexRow) -> dict[str, Any]:
    """An index row in the collection's field names (schemas/milvus.py)."""
    if row.embedding is None:
        raise ValueError(f"index row {row.product_id!r} has no embedding")
    return {
        **filter_fields(row),
        "model_version": row.model_version,
        "colour": {"fractions": dict(row.colour_fractions), "vector": list(row.colour_vector)},
        "predicted_category": row.predicted_category,
        "attribute_scores": dict(row.attribute_scores),
        "embedding": np.asarray(row.embedding, dtype=np.float32).tolist(),
    }


def from_entity(product_id: str, entity: Mapping[str, Any]) -> IndexRow:
    colour = entity.get("colour") or {}
    embedding = entity.get("embedding")
    return IndexRow(
        product_id=product_id,
        version=int(entity.get("version", 0)),
        category=str(entity.get("category", "")),
        price=float(entity.get("price", 0.0)),
        primary_colour=str(entity.get("primary_colour", "")),
        model_version=str(entity.get("model_version", "")),
        colour_fractions=dict(colour.get("fractions") or {}),
        colour_vector=list(colour.get("vector") or []),
        predicted_category=str(entity.get("predicted_category") or ""),
        attributes=tuple(entity.get("attributes") or ()),
        attribute_scores=dict(entity.get("attribute_scores") or {}),
        embedding=None if embedding is None else np.asarray(embedding, dtype=np.float32),
    )


def pymilvus_schema(client: MilvusClient, spec: CollectionSpec) -> Any:
    """The collection spec (schemas/milvus.py) as a pymilvus schema."""
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
    for f in spec.fields:
        kwargs: dict[str, Any] = {}
        if f.max_length is not None:
            kwargs["max_length"] = f.max_length
        if f.dim is not None:
            kwargs["dim"] = f.dim
        if f.kind is FieldKind.ARRAY:
            kwargs.update(element_type=DataType.VARCHAR, max_capacity=f.max_capacity)
        schema.add_field(f.name, _TYPES[f.kind], is_primary=f.primary, **kwargs)
    return schema


def count_rows(client: MilvusClient, collection: str) -> int:
    rows = client.query(collection, filter="", output_fields=["count(*)"])
    return int(rows[0]["count(*)"])


def row_versions(
    client: MilvusClient, collection: str, pk: str, batch: int
) -> Iterator[dict[str, int]]:
    """Every row's id and version, a page at a time. pymilvus's query iterator pages by primary
    key on every backend (a plain query's limit returns rows in segment order on Milvus Lite,
    and offsets stop at 16384)."""
    pages = client.query_iterator(
        collection, batch_size=batch, filter="", output_fields=[pk, "version"]
    )
    try:
        while page := pages.next():
            yield {str(r[pk]): int(r["version"]) for r in page}
    finally:
        pages.close()


def output_fields(fields: Sequence[str] | None) -> list[str]:
    """Row fields asked for, as collection fields (the colour fields share one JSON field)."""
    return sorted({"colour" if f.startswith("colour_") else f for f in narrow_fields(fields)})


class MilvusVectorIndex:
    def __init__(self, config: MilvusConfig, collection: str, dim: int) -> None:
        if config.index_type not in _INDEX_PARAMS:
            raise ValueError(
                f"unsupported index type {config.index_type}: use {sorted(_INDEX_PARAMS)}"
            )
        self.client = connect(config.uri, config.token)
        self.collection = collection
        self.spec: CollectionSpec = product_collection(dim)
        self.index_type = config.index_type
        self.batch_size = config.batch_size
        self.search_consistency = config.search_consistency
        self._pk = next(f.name for f in self.spec.fields if f.primary)

    @classmethod
    def open(cls, config: MilvusConfig, collection: str, dim: int) -> MilvusVectorIndex:
        """The collection, created if missing and loaded for search."""
        index = cls(config, collection, dim)
        index.ensure()
        return index

    def ensure(self) -> None:
        """Create the collection and its index if missing; load it for search."""
        if not self.client.has_collection(self.collection):
            schema = pymilvus_schema(self.client, self.spec)
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

    def upsert(self, rows: Sequence[IndexRow]) -> None:
        entities = [to_entity(r) for r in rows]  # every row checked before any is written
        for start in range(0, len(entities), self.batch_size):
            self.client.upsert(self.collection, entities[start : start + self.batch_size])

    def delete(self, product_ids: Sequence[str]) -> None:
        if product_ids:
            self.client.delete(self.collection, filter=in_filter(self._pk, product_ids))

    def _search_params(self, k: int, effort: Effort | None) -> dict[str, Any]:
        if self.index_type == "HNSW":
            return {"metric_type": self.spec.metric, "params": {"ef": max(64, 2 * k)}}
        if self.index_type == "IVF_FLAT":
            nlist = _INDEX_PARAMS["IVF_FLAT"]["nlist"]  # more lists than there are: all of them
            nprobe = min(nlist, effort.nprobe) if effort and effort.nprobe else 16
            return {"metric_type": self.spec.metric, "params": {"nprobe": nprobe}}
        return {"metric_type": self.spec.metric, "params": {}}

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
        kwargs: dict[str, Any] = {}
        if offset:
            kwargs["offset"] = offset
        results = self.client.search(
            self.collection,
            data=np.asarray(vectors, dtype=np.float32).tolist(),
            limit=k,
            filter=expression(filters),
            output_fields=output_fields(fields),
            search_params=self._search_params(k + offset, effort),
            anns_field=self.spec.vector_field,
            consistency_level=self.search_consistency,
            **kwargs,
        )
        return [
            [
                Hit(from_entity(str(hit.id), hit.get("entity") or {}), float(hit.distance))
                for hit in hits
            ]
            for hits in results
        ]

    def get(self, product_ids: Sequence[str], with_vectors: bool = False) -> dict[str, IndexRow]:
        """Read at the search's consistency (the collection's Strong default waits for the next
        time tick: ~200 ms on a 2.3.5 server, against 12 ms Bounded for 160 rows of 1280-d);
        ids not seen are read again at Strong, so a product written a moment ago is found."""
        found = self._get(product_ids, with_vectors, self.search_consistency)
        missing = [p for p in product_ids if p not in found]
        if missing and self.search_consistency != "Strong":
            found.update(self._get(missing, with_vectors, "Strong"))
        return found

    def _get(
        self, product_ids: Sequence[str], with_vectors: bool, consistency: str
    ) -> dict[str, IndexRow]:
        if not product_ids:
            return {}
        fields = self.spec.scalar_fields + ([self.spec.vector_field] if with_vectors else [])
        rows = self.client.query(
            self.collection,
            filter=in_filter(self._pk, product_ids),
            output_fields=fields,
            consistency_level=consistency,
        )
        return {str(r[self._pk]): from_entity(str(r[self._pk]), r) for r in rows}

    def count(self) -> int:
        return count_rows(self.client, self.collection)

    def versions(self, batch: int = 5000) -> Iterator[dict[str, int]]:
        return row_versions(self.client, self.collection, self._pk, batch)

    def set_alias(self, alias: str) -> None:
        if alias in self.client.list_aliases().get("aliases", []):
            self.client.alter_alias(collection_name=self.collection, alias=alias)
        else:
            self.client.create_alias(collection_name=self.collection, alias=alias)

    def drop(self) -> None:
        if self.client.has_collection(self.collection):
            self.client.drop_collection(self.collection)

    def flush(self) -> None:
        """Seal what was written into indexed segments. Milvus Lite searches unflushed rows by
        brute force in Python (measured: 230-400 ms vs 40-80 ms flushed at 2000 rows)."""
        self.client.flush(self.collection)

    def ping(self) -> None:
        """Reachable, with the collection loaded for search: a restarted Milvus Lite server
        comes back with its collections released, and loading them again is the repair."""
        if self.client.get_load_state(self.collection)["state"] != LoadState.Loaded:
            self.client.load_collection(self.collection)

    def close(self) -> None:
        self.client.close()


class MilvusProbe:
    """Milvus reachable or not, whatever Postgres says (readiness reports each on its own);
    connects lazily, so a process starts while Milvus is down."""

    def __init__(self, config: MilvusConfig) -> None:
        self.config = config
        self._client: MilvusClient | None = None

    def ping(self) -> None:
        if self._client is None:
            self._client = connect(self.config.uri, self.config.token)
        self._client.list_collections()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
