"""The Milvus collection, as data. The store adapter turns it into a pymilvus schema.

Kept to what every Milvus we run supports (Lite 3.x, the 2.3 standalone server, 2.5+ clusters):
one float vector field, scalar fields for filters, JSON fields for colour features and attribute
confidences, and an ARRAY of attribute keys (the attribute filter: array_contains_any). The
binary index's collection (``code_collection``) needs a Milvus with binary vectors: a server.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class FieldKind(StrEnum):
    VARCHAR = "VARCHAR"
    INT64 = "INT64"
    FLOAT = "FLOAT"
    JSON = "JSON"
    ARRAY = "ARRAY"  # of VARCHAR (attribute keys), filtered with array_contains_any
    FLOAT_VECTOR = "FLOAT_VECTOR"
    BINARY_VECTOR = "BINARY_VECTOR"  # packed bits; dim counts bits (Milvus servers, Lite 2.5)


@dataclass(frozen=True)
class FieldSpec:
    name: str
    kind: FieldKind
    max_length: int | None = None
    dim: int | None = None
    primary: bool = False
    max_capacity: int | None = None  # ARRAY only


@dataclass(frozen=True)
class CollectionSpec:
    fields: tuple[FieldSpec, ...]
    vector_field: str
    metric: str = "COSINE"

    @property
    def scalar_fields(self) -> list[str]:
        vectors = (FieldKind.FLOAT_VECTOR, FieldKind.BINARY_VECTOR)
        return [f.name for f in self.fields if f.kind not in vectors]


def product_collection(dim: int) -> CollectionSpec:
    return CollectionSpec(
        fields=(
            FieldSpec("product_id", FieldKind.VARCHAR, max_length=128, primary=True),
            FieldSpec("version", FieldKind.INT64),
            FieldSpec("category", FieldKind.VARCHAR, max_length=64),
            FieldSpec("price", FieldKind.FLOAT),
            FieldSpec("primary_colour", FieldKind.VARCHAR, max_length=32),
            FieldSpec("model_version", FieldKind.VARCHAR, max_length=128),
            FieldSpec("colour", FieldKind.JSON),
            FieldSpec("predicted_category", FieldKind.VARCHAR, max_length=64),
            FieldSpec("attributes", FieldKind.ARRAY, max_length=64, max_capacity=128),
            FieldSpec("attribute_scores", FieldKind.JSON),
            FieldSpec("embedding", FieldKind.FLOAT_VECTOR, dim=dim),
        ),
        vector_field="embedding",
    )


FILTER_FIELDS = ("product_id", "version", "category", "price", "primary_colour", "attributes")


def code_collection(bits: int) -> CollectionSpec:
    """The binary index beside a product collection: each product's code (processors/
    binary_codes.py) and the product collection's own filter fields, so a Hamming search
    filters exactly as the float one does (Milvus 2.3 allows one vector field per
    collection)."""
    filters = tuple(f for f in product_collection(0).fields if f.name in FILTER_FIELDS)
    return CollectionSpec(
        fields=(*filters, FieldSpec("code", FieldKind.BINARY_VECTOR, dim=bits)),
        vector_field="code",
        metric="HAMMING",
    )
