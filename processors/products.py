"""Product events in, index records out: decode, validate, load the image, find the item's
region, embed it, measure its colours. Errors are data: each failed event comes back as a
Failure carrying its dead-letter kind and reason, and never stops the rest of the batch.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Protocol

import numpy as np
from pydantic import ValidationError

from processors.colour import ColourFeatures, colour_features
from processors.errors import ProcessingError
from processors.images import ImageLimits, load_image, thumbnail
from processors.roi import Box, foreground_region, square_crop
from schemas.dead_letter import ErrorKind
from schemas.events import (
    ProductDelete,
    ProductUpsert,
    UnknownSchemaVersion,
    parse_product_event,
)


class Embedder(Protocol):
    @property
    def dim(self) -> int: ...

    @property
    def model_version(self) -> str: ...

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray: ...


@dataclass(frozen=True)
class RawEvent:
    """One Kafka record as the processor sees it: bytes plus where they came from."""

    value: bytes
    topic: str = ""
    partition: int = -1
    offset: int = -1
    key: bytes | None = None


@dataclass(frozen=True)
class Failure:
    raw: RawEvent
    kind: ErrorKind
    message: str
    product_id: str | None = None


@dataclass(frozen=True)
class IndexedProduct:
    """Everything the stores keep about one product version."""

    event: ProductUpsert
    embedding: np.ndarray
    box: Box
    image_width: int
    image_height: int
    colour: ColourFeatures
    model_version: str
    thumbnail: bytes  # a small WebP for result grids, so pages never hotlink product images

    @property
    def product_id(self) -> str:
        return self.event.product_id

    @property
    def version(self) -> int:
        return self.event.version

    def milvus_row(self) -> dict[str, object]:
        return {
            "product_id": self.event.product_id,
            "version": self.event.version,
            "category": self.event.category,
            "price": float(self.event.price),
            "primary_colour": self.colour.primary,
            "model_version": self.model_version,
            "colour": {"fractions": self.colour.fractions, "vector": self.colour.vector},
            "embedding": self.embedding.astype(np.float32).tolist(),
        }

    def postgres_row(self, indexed_at: datetime) -> dict[str, object]:
        e = self.event
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
            "roi_box": self.box.as_list(),
            "image_width": self.image_width,
            "image_height": self.image_height,
            "primary_colour": self.colour.primary,
            "colour_fractions": self.colour.fractions,
            "colour_vector": self.colour.vector,
            "model_version": self.model_version,
            "thumbnail": self.thumbnail,
            "event_time": e.event_time,
            "produced_at": e.produced_at,
            "indexed_at": indexed_at,
        }


@dataclass
class BatchResult:
    upserts: list[IndexedProduct] = field(default_factory=list)
    deletes: list[ProductDelete] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    superseded: int = 0  # older versions of a product replaced by a newer one in this batch
    sources: dict[str, list[RawEvent]] = field(default_factory=dict)  # product id -> its records


def decode_event(raw: RawEvent) -> ProductUpsert | ProductDelete:
    try:
        payload = json.loads(raw.value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProcessingError(f"value is not JSON: {exc}", ErrorKind.NOT_JSON) from exc
    if not isinstance(payload, dict):
        raise ProcessingError(
            f"event must be a JSON object, got {type(payload).__name__}",
            ErrorKind.SCHEMA_VIOLATION,
        )
    try:
        return parse_product_event(payload)
    except UnknownSchemaVersion as exc:
        raise ProcessingError(str(exc), ErrorKind.UNKNOWN_SCHEMA_VERSION) from exc
    except ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<event>'}: {err['msg']}"
            for err in exc.errors()[:10]
        )
        raise ProcessingError(f"schema violation: {details}", ErrorKind.SCHEMA_VIOLATION) from exc


class ProductProcessor:
    def __init__(self, embedder: Embedder, limits: ImageLimits) -> None:
        self.embedder = embedder
        self.limits = limits

    def process(self, raws: Sequence[RawEvent]) -> BatchResult:
        result = BatchResult()
        latest: dict[str, tuple[RawEvent, ProductUpsert | ProductDelete]] = {}
        for raw in raws:
            try:
                event = decode_event(raw)
            except ProcessingError as exc:
                result.failures.append(Failure(raw, exc.kind, str(exc)))
                continue
            result.sources.setdefault(event.product_id, []).append(raw)
            seen = latest.get(event.product_id)
            if seen is None or event.version > seen[1].version:
                latest[event.product_id] = (raw, event)
            result.superseded += seen is not None
        crops: list[np.ndarray] = []
        pending: list[tuple[ProductUpsert, np.ndarray, Box, ColourFeatures]] = []
        for raw, event in latest.values():
            if isinstance(event, ProductDelete):
                result.deletes.append(event)
                continue
            try:
                rgb = load_image(event.image, self.limits)
                region = foreground_region(rgb)
                colour = colour_features(rgb, region)
                crops.append(square_crop(rgb, region))
            except ProcessingError as exc:
                result.failures.append(Failure(raw, exc.kind, str(exc), event.product_id))
                continue
            pending.append((event, rgb, region.box, colour))
        if crops:
            vectors = self.embedder.embed(crops)
            for (event, rgb, box, colour), vec in zip(pending, vectors, strict=True):
                result.upserts.append(
                    IndexedProduct(
                        event,
                        vec,
                        box,
                        rgb.shape[1],
                        rgb.shape[0],
                        colour,
                        self.embedder.model_version,
                        thumbnail(rgb),
                    )
                )
        return result

    def describe_queries(
        self, images: Sequence[np.ndarray]
    ) -> tuple[np.ndarray, list[dict[str, float]]]:
        """The path a product image takes, for query images: embeddings and colour shares."""
        regions = [foreground_region(rgb) for rgb in images]
        vectors = self.embedder.embed(
            [square_crop(rgb, r) for rgb, r in zip(images, regions, strict=True)]
        )
        colours = [
            colour_features(rgb, r).fractions for rgb, r in zip(images, regions, strict=True)
        ]
        return vectors, colours
