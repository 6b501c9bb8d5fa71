"""Row shapes: what the stores keep of a processed product, and the one codec of the base
embedding (float16, little-endian), shared by the writer, the re-index, impressions, training
and the benches."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import numpy as np

from processors.products import IndexedProduct
from processors.text import product_text
from processors.text_features import product_features
from schemas.attributes import Source
from stores.base import IndexRow

# What a re-index needs of a product to rebuild its index row (stores/rows.stored_index_row).
INDEX_COLUMNS = (
    "product_id",
    "version",
    "category",
    "price",
    "primary_colour",
    "colour_fractions",
    "colour_vector",
    "predicted_category",
    "base_embedding",
    "model_version",  # the base model's, behind base_embedding
    "search_text",  # a text model's product tower reads it (stores/rows.tower_inputs)
)


def embedded_in(row: Mapping[str, Any], base_model_version: str) -> bool:
    """A product row's stored base embedding exists and lives in that base model's space
    ("": any); one of an earlier base model waits for its event to be processed again."""
    if row["base_embedding"] is None:
        return False
    return not base_model_version or row["model_version"] == base_model_version


def encode_base(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f2").tobytes()


def decode_base(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<f2").astype(np.float32)


def encode_base64(vector: np.ndarray) -> str:
    """The base embedding as impressions and training pairs carry it."""
    return base64.b64encode(encode_base(vector)).decode()


def decode_base64(text: str) -> np.ndarray:
    return decode_base(base64.b64decode(text))


def index_row(
    product: IndexedProduct, vector: np.ndarray | None = None, model_version: str | None = None
) -> IndexRow:
    """A processed product's index row; ``vector``/``model_version``: a head's projection of
    its base embedding, if the collection is not of base embeddings."""
    scores = {t.key: round(t.confidence, 4) for t in product.tags.attributes}
    return IndexRow(
        product_id=product.product_id,
        version=product.version,
        category=product.event.category,
        price=float(product.event.price),
        primary_colour=product.colour.primary,
        model_version=model_version or product.model_version,
        colour_fractions=product.colour.fractions,
        colour_vector=list(product.colour.vector),
        predicted_category=product.tags.category or "",
        attributes=tuple(scores),
        attribute_scores=scores,
        embedding=np.asarray(product.embedding if vector is None else vector, dtype=np.float32),
    )


def stored_index_row(
    stored: Mapping[str, Any],
    attributes: Sequence[Mapping[str, Any]],
    vector: np.ndarray,
    model_version: str,
) -> IndexRow:
    """An index row rebuilt from Postgres (a product row of ``product_batches`` and its
    attribute rows): a re-index projects stored base embeddings without any image."""
    scores = {a["attribute_key"]: round(float(a["confidence"]), 4) for a in attributes}
    return IndexRow(
        product_id=stored["product_id"],
        version=stored["version"],
        category=stored["category"],
        price=float(stored["price"]),
        primary_colour=stored["primary_colour"],
        model_version=model_version,
        colour_fractions=dict(stored["colour_fractions"]),
        colour_vector=list(stored["colour_vector"]),
        predicted_category=stored["predicted_category"] or "",
        attributes=tuple(scores),
        attribute_scores=scores,
        embedding=np.asarray(vector, dtype=np.float32),
    )


def postgres_row(product: IndexedProduct, indexed_at: datetime) -> dict[str, object]:
    """A processed product's metadata row (schemas/tables.py ``products``) and its attributes."""
    e = product.event
    tags = product.tags
    return {
        "product_id": e.product_id,
        "version": e.version,
        "title": e.title,
        "brand": e.brand,
        "category": e.category,
        "price": Decimal(e.price),
        "currency": e.currency,
        "image_ref": e.image.describe(),
        "synthetic_fields": list(e.synthetic_fields),
        "roi_box": product.box.as_list(),
        "image_width": product.image_width,
        "image_height": product.image_height,
        "primary_colour": product.colour.primary,
        "colour_fractions": product.colour.fractions,
        "colour_vector": product.colour.vector,
        "model_version": product.model_version,
        "thumbnail": product.thumbnail,
        "base_embedding": encode_base(product.embedding),
        "predicted_category": tags.category,
        "category_confidence": tags.confidence,
        "tagger_version": tags.model_version,
        "attributes": [
            {
                "attribute_key": t.key,
                "confidence": t.confidence,
                "source": t.source.value,
                "model_version": tags.model_version if t.source is not Source.CATALOGUE else None,
            }
            for t in tags.attributes
        ],
        "event_time": e.event_time,
        "produced_at": e.produced_at,
        "indexed_at": indexed_at,
        "search_text": product_text(
            e.title, e.brand, e.category, product.colour.primary, [t.key for t in tags.attributes]
        ),
    }


def tower_inputs(rows: Sequence[Mapping[str, Any]]) -> tuple[list[str], np.ndarray]:
    """What a text model's product tower reads of products (rows as ``postgres_row`` shapes
    them, or as ``product_batches`` gives them plus their ``attributes``): their words and
    dense features. One function for training, the worker and the re-index, so a product is
    embedded alike by all three."""
    texts = [str(r.get("search_text") or r.get("title") or "") for r in rows]
    dense = [
        product_features(
            {a["attribute_key"]: float(a["confidence"]) for a in r.get("attributes", ())},
            r["colour_fractions"],
            decode_base(r["base_embedding"]),
        )
        for r in rows
    ]
    return texts, (np.stack(dense) if dense else np.zeros((0, 0), np.float32))
