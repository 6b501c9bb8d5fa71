"""Product events in, index records out: decode, validate, load the image, find the item's
region, embed it, measure its colours. Errors are data: each failed event comes back as a
Failure carrying its dead-letter kind and reason, and never stops the rest of the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from processors.colour import COLOUR_VECTOR_DIM, ColourFeatures, colour_features
from processors.decoding import decode_json_event
from processors.detector import RegionFinder
from processors.errors import ProcessingError
from processors.images import ImageLimits, load_image, thumbnail
from processors.roi import Box, Region, square_crop
from processors.tagger import AttributeTag, NeighbourLookup, OnnxTagger, knn_vote
from schemas.attributes import Source
from schemas.dead_letter import ErrorKind
from schemas.events import (
    ProductDelete,
    ProductUpsert,
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
    """One Kafka record as the processor sees it: bytes plus where they came from. ``topic`` is
    empty for events handed in directly (tests, catalogue loads); a Kafka record must be keyed
    by its product id (every version of a product on one partition, in order)."""

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
class ProductTags:
    category: str | None  # the fused category's taxonomy key
    confidence: float | None
    attributes: list[AttributeTag]
    model_version: str | None  # the tagger's

    @classmethod
    def catalogue_only(cls, keys: Sequence[str]) -> ProductTags:
        return cls(None, None, [AttributeTag(k, 1.0, Source.CATALOGUE) for k in keys], None)


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
    tags: ProductTags

    @property
    def product_id(self) -> str:
        return self.event.product_id

    @property
    def version(self) -> int:
        return self.event.version


@dataclass
class BatchResult:
    upserts: list[IndexedProduct] = field(default_factory=list)
    deletes: list[ProductDelete] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    superseded: int = 0  # older versions of a product replaced by a newer one in this batch
    sources: dict[str, list[RawEvent]] = field(default_factory=dict)  # product id -> its records

    def merged(self, other: BatchResult) -> BatchResult:
        """Both parts of a split batch as one: still one version per product (the newest)."""
        latest: dict[str, IndexedProduct | ProductDelete] = {}
        dropped = 0
        items: list[IndexedProduct | ProductDelete] = [*self.upserts, *self.deletes]
        for item in [*items, *other.upserts, *other.deletes]:
            seen = latest.get(item.product_id)
            dropped += seen is not None
            if seen is None or item.version > seen.version:
                latest[item.product_id] = item
        sources = {k: list(v) for k, v in self.sources.items()}
        for pid, raws in other.sources.items():
            sources.setdefault(pid, []).extend(raws)
        return BatchResult(
            [i for i in latest.values() if isinstance(i, IndexedProduct)],
            [i for i in latest.values() if isinstance(i, ProductDelete)],
            self.failures + other.failures,
            self.superseded + other.superseded + dropped,
            sources,
        )

    def halves(self) -> tuple[BatchResult, BatchResult] | None:
        """The writes split in two (to find the one a store refuses); None for a single one."""
        items: list[IndexedProduct | ProductDelete] = [*self.upserts, *self.deletes]
        if len(items) < 2:
            return None
        middle = len(items) // 2

        def part(chosen: list[IndexedProduct | ProductDelete]) -> BatchResult:
            return BatchResult(
                [i for i in chosen if isinstance(i, IndexedProduct)],
                [i for i in chosen if isinstance(i, ProductDelete)],
                sources={i.product_id: self.sources.get(i.product_id, []) for i in chosen},
            )

        return part(items[:middle]), part(items[middle:])


def decode_event(raw: RawEvent) -> ProductUpsert | ProductDelete:
    return decode_json_event(raw.value, parse_product_event)


@dataclass(frozen=True)
class Described:
    """What the image path yields for a batch of images: regions, embeddings and colours."""

    regions: list[Region]
    vectors: np.ndarray
    colours: list[ColourFeatures]

    @property
    def colour_matrix(self) -> np.ndarray:
        return np.asarray([c.vector for c in self.colours], dtype=np.float32).reshape(
            len(self.colours), COLOUR_VECTOR_DIM
        )


def describe_images(
    images: Sequence[np.ndarray], embedder: Embedder, finder: RegionFinder
) -> Described:
    """The one image path, shared by indexing, queries, training and evaluation."""
    regions = finder.find(images)
    colours = [colour_features(rgb, r) for rgb, r in zip(images, regions, strict=True)]
    crops = [square_crop(rgb, r) for rgb, r in zip(images, regions, strict=True)]
    vectors = embedder.embed(crops) if crops else np.empty((0, embedder.dim), np.float32)
    return Described(regions, vectors, colours)


class ProductProcessor:
    def __init__(
        self,
        embedder: Embedder,
        limits: ImageLimits,
        finder: RegionFinder | None = None,
        tagger: OnnxTagger | None = None,
        neighbours: NeighbourLookup | None = None,
    ) -> None:
        if tagger is not None and tagger.card.embedding_model != embedder.model_version:
            # its inputs would be another model's features: nonsense tags, or a shape error
            raise ValueError(
                f"the attribute tagger was trained on {tagger.card.embedding_model!r} features, "
                f"but products are embedded with {embedder.model_version!r}: run "
                "`stylestream train attributes --force` with this base model"
            )
        self.embedder = embedder
        self.limits = limits
        self.finder = finder or RegionFinder()
        self.tagger = tagger
        self.neighbours = neighbours

    def process(self, raws: Sequence[RawEvent]) -> BatchResult:
        result = BatchResult()
        chunk: list[tuple[ProductUpsert, np.ndarray]] = []
        held = 0  # decoded bytes in the chunk
        for raw, event in self._latest(raws, result).values():
            if isinstance(event, ProductDelete):
                result.deletes.append(event)
                continue
            try:
                rgb = load_image(event.image, self.limits)
            except ProcessingError as exc:
                result.failures.append(Failure(raw, exc.kind, str(exc), event.product_id))
                continue
            chunk.append((event, rgb))
            held += rgb.nbytes
            # decoded images are bounded by bytes too, not only by the batch's count
            if held >= self.limits.batch_bytes:
                result.upserts += self._index(chunk)
                chunk, held = [], 0
        result.upserts += self._index(chunk)
        return result

    @staticmethod
    def _latest(
        raws: Sequence[RawEvent], result: BatchResult
    ) -> dict[str, tuple[RawEvent, ProductUpsert | ProductDelete]]:
        """Each product's newest event in the batch; undecodable records become failures."""
        latest: dict[str, tuple[RawEvent, ProductUpsert | ProductDelete]] = {}
        for raw in raws:
            try:
                event = decode_event(raw)
            except ProcessingError as exc:
                result.failures.append(Failure(raw, exc.kind, str(exc)))
                continue
            if raw.topic and raw.key != event.product_id.encode():
                message = f"the record's key {raw.key!r:.80} is not its product id"
                failure = Failure(raw, ErrorKind.KEY_MISMATCH, message, event.product_id)
                result.failures.append(failure)
                continue
            result.sources.setdefault(event.product_id, []).append(raw)
            seen = latest.get(event.product_id)
            if seen is None or event.version > seen[1].version:
                latest[event.product_id] = (raw, event)
            result.superseded += seen is not None
        return latest

    def _index(self, pending: Sequence[tuple[ProductUpsert, np.ndarray]]) -> list[IndexedProduct]:
        if not pending:
            return []
        described = describe_images([rgb for _, rgb in pending], self.embedder, self.finder)
        tags = self._tag(described, [event for event, _ in pending])
        return [
            IndexedProduct(
                event,
                described.vectors[i],
                described.regions[i].box,
                rgb.shape[1],
                rgb.shape[0],
                described.colours[i],
                self.embedder.model_version,
                thumbnail(rgb),
                tags[i],
            )
            for i, (event, rgb) in enumerate(pending)
        ]

    def _tag(self, described: Described, events: Sequence[ProductUpsert]) -> list[ProductTags]:
        if self.tagger is None:
            return [ProductTags.catalogue_only(e.attributes) for e in events]
        predictions = self.tagger.predict(described.vectors, described.colour_matrix)
        votes: list[np.ndarray | None] = [None] * len(events)
        if self.neighbours is not None:
            found = self.neighbours.neighbours(
                described.vectors, self.tagger.card.fusion_k, [e.product_id for e in events]
            )
            votes = [knn_vote(n, self.tagger.card.category_keys) for n in found]
        out = []
        rows = zip(events, predictions, votes, described.colours, strict=True)
        for event, prediction, vote, colour in rows:
            category, confidence, attributes = self.tagger.tags(
                prediction, vote, event.attributes, colour.fractions
            )
            out.append(ProductTags(category, confidence, attributes, self.tagger.model_version))
        return out

    def describe_queries(
        self, images: Sequence[np.ndarray], encoder: Embedder | None = None
    ) -> tuple[np.ndarray, list[dict[str, float]], list[dict[str, float]]]:
        """The path a product image takes, for query images: embeddings, colour shares and
        predicted attributes (key -> confidence; the category from the model alone).
        ``encoder``: a compact query model instead of the base embedder; the tagger reads the
        base model's features, so such queries come without predicted attributes."""
        described = describe_images(images, encoder or self.embedder, self.finder)
        colours = [c.fractions for c in described.colours]
        if self.tagger is None or encoder is not None:
            return described.vectors, colours, [{} for _ in images]
        predictions = self.tagger.predict(described.vectors, described.colour_matrix)
        attributes = [
            {t.key: t.confidence for t in self.tagger.tags(p, None, (), c.fractions)[2]}
            for p, c in zip(predictions, described.colours, strict=True)
        ]
        return described.vectors, colours, attributes
