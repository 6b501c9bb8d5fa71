"""Product events for integration tests, with Fashion-MNIST photos or synthetic garments."""

from __future__ import annotations

import base64
from decimal import Decimal

import numpy as np

from schemas.events import ImageRef, ProductDelete, ProductUpsert, encode_event, utcnow
from tests.synthetic import encode
from training.datasets import CLASSES, load_split

_TRAIN: tuple[np.ndarray, np.ndarray] | None = None


def photo(i: int) -> tuple[np.ndarray, str]:
    global _TRAIN
    if _TRAIN is None:
        _TRAIN = load_split("train")
    images, labels = _TRAIN
    return images[i], CLASSES[int(labels[i])]


def upsert(pid: str, version: int, i: int, **changes: object) -> ProductUpsert:
    img, category = photo(i)
    fields: dict[str, object] = {
        "product_id": pid,
        "version": version,
        "title": f"Synthetic title {pid} v{version}",
        "category": category,
        "price": Decimal("12.50"),
        "currency": "EUR",
        "image": ImageRef(data_base64=base64.b64encode(encode(img)).decode()),
        "synthetic_fields": ["title", "price", "currency"],
        "produced_at": utcnow(),
    }
    fields.update(changes)
    return ProductUpsert(**fields)  # type: ignore[arg-type]


def delete(pid: str, version: int) -> ProductDelete:
    return ProductDelete(product_id=pid, version=version, produced_at=utcnow())


def record(event: ProductUpsert | ProductDelete) -> tuple[bytes, bytes]:
    return event.product_id.encode(), encode_event(event)
