"""The Milvus collection, as data. The store adapter turns it into a pymilvus schema.

Kept to what every Milvus we run supports (Lite 3.x, the 2.3 standalone server, 2.5+ clusters):
one float vector field, scalar fields for filters, JSON fields for colour features and attribute
confidences, and an ARRAY of attribute keys (the attribute filter: array_contains_any).
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
        return [f.name for f in self.fields if f.kind is not FieldKind.FLOAT_VECTOR]


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
