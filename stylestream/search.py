"""Visual search over the index: by image or by product id. Shared by the CLI and the API."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from processors.products import ProductProcessor
from stores.base import Hit, VectorIndex
from stores.milvus import quote


class UnknownProduct(LookupError):
    pass


@dataclass(frozen=True)
class Filters:
    category: str | None = None
    colour: str | None = None
    min_price: float | None = None
    max_price: float | None = None
    version: int | None = None

    def expression(self) -> str:
        """A Milvus boolean expression; every value is quoted or a number, never spliced raw."""
        parts = []
        if self.category is not None:
            parts.append(f"category == {quote(self.category)}")
        if self.colour is not None:
            parts.append(f"primary_colour == {quote(self.colour)}")
        if self.min_price is not None:
            parts.append(f"price >= {float(self.min_price)!r}")
        if self.max_price is not None:
            parts.append(f"price <= {float(self.max_price)!r}")
        if self.version is not None:
            parts.append(f"version == {int(self.version)}")
        return " and ".join(parts)


class SearchService:
    def __init__(self, processor: ProductProcessor, index: VectorIndex) -> None:
        self.processor = processor
        self.index = index

    def by_images(
        self, images: Sequence[np.ndarray], k: int = 10, filters: Filters | None = None
    ) -> list[list[Hit]]:
        """Batched: one Milvus call for all queries (far cheaper than one call each)."""
        vectors = self.processor.embed_images(images)
        return self.index.search(vectors, k, (filters or Filters()).expression())

    def by_product(self, product_id: str, k: int = 10, filters: Filters | None = None) -> list[Hit]:
        row = self.index.get([product_id], with_vectors=True).get(product_id)
        if row is None:
            raise UnknownProduct(f"product {product_id!r} is not in the index")
        vector = np.asarray([row["embedding"]], dtype=np.float32)
        hits = self.index.search(vector, k + 1, (filters or Filters()).expression())[0]
        return [h for h in hits if h.product_id != product_id][:k]
