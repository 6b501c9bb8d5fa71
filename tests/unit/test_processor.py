import base64
import json
from datetime import UTC, datetime

import numpy as np

from processors.embedding import OnnxEmbedder
from processors.products import ProductProcessor, RawEvent
from processors.roi import Box
from schemas.dead_letter import ErrorKind
from stores.rows import decode_base, index_row, postgres_row
from tests.synthetic import encode, synthetic_garment
from training.datasets import load_split, to_rgb


def upsert(pid: str, version: int, image: bytes, **extra: object) -> RawEvent:
    payload = {
        "schema_version": 1,
        "type": "product.upsert",
        "product_id": pid,
        "version": version,
        "title": f"Synthetic {pid}",
        "category": "dress",
        "price": "10.00",
        "currency": "EUR",
        "image": {"data_base64": base64.b64encode(image).decode()},
        **extra,
    }
    return RawEvent(json.dumps(payload).encode(), "products.v1", 0, version, pid.encode())


def test_embeddings_are_unit_length_and_deterministic(embedder: OnnxEmbedder) -> None:
    imgs = [synthetic_garment(seed=s) for s in range(3)]
    a, b = embedder.embed(imgs), embedder.embed(imgs)
    assert a.shape == (3, embedder.dim)
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert np.allclose(a, b, atol=1e-6)


def test_batching_does_not_change_embeddings(model_path: object) -> None:
    from pathlib import Path

    assert isinstance(model_path, Path)
    imgs = [synthetic_garment(seed=s, colour=(10 * s, 40, 200)) for s in range(5)]
    one = OnnxEmbedder(model_path, batch_size=1).embed(imgs)
    many = OnnxEmbedder(model_path, batch_size=5).embed(imgs)
    assert np.allclose(one, many, atol=1e-4)


def test_same_category_photos_are_closer_than_other_categories(embedder: OnnxEmbedder) -> None:
    images, labels = load_split("t10k")
    trousers = images[labels == 1][:20]
    bags = images[labels == 8][:20]
    vecs = embedder.embed([to_rgb(x) for x in np.concatenate([trousers, bags])])
    sims = vecs @ vecs.T
    within = (sims[:20, :20].sum() - 20) / (20 * 19)
    across = sims[:20, 20:].mean()
    assert within > across + 0.05


def test_a_batch_keeps_good_events_and_returns_failures_as_data(
    processor: ProductProcessor,
) -> None:
    good = encode(synthetic_garment())
    raws = [
        upsert("a", 1, good),
        RawEvent(b"{not json", "products.v1", 0, 10),
        upsert("b", 1, b"garbage bytes"),
        RawEvent(json.dumps({"schema_version": 9, "product_id": "c"}).encode()),
        upsert("d", 1, good, price="-3"),
        upsert("e", 2, good),
    ]
    result = processor.process(raws)
    assert sorted(u.product_id for u in result.upserts) == ["a", "e"]
    kinds = sorted(f.kind.value for f in result.failures)
    assert kinds == sorted(
        [
            ErrorKind.NOT_JSON,
            ErrorKind.UNDECODABLE_IMAGE,
            ErrorKind.UNKNOWN_SCHEMA_VERSION,
            ErrorKind.SCHEMA_VIOLATION,
        ]
    )
    bad_image = next(f for f in result.failures if f.kind is ErrorKind.UNDECODABLE_IMAGE)
    assert bad_image.product_id == "b" and bad_image.raw is raws[2]
    red = next(u for u in result.upserts if u.product_id == "a")
    assert red.colour.primary == "red"
    assert red.box.iou(Box(30, 40, 90, 130)) > 0.7


def test_only_the_newest_version_in_a_batch_is_processed(processor: ProductProcessor) -> None:
    img = encode(synthetic_garment())
    result = processor.process([upsert("a", 1, img), upsert("a", 3, img), upsert("a", 2, img)])
    assert [u.version for u in result.upserts] == [3]
    assert result.superseded == 2
    assert len(result.sources["a"]) == 3


def test_records_for_both_stores(processor: ProductProcessor) -> None:
    result = processor.process([upsert("a", 1, encode(synthetic_garment()))])
    product = result.upserts[0]
    row = index_row(product)
    assert row.product_id == "a" and row.version == 1
    assert row.embedding is not None and len(row.embedding) == processor.embedder.dim
    assert row.attributes == tuple(row.attribute_scores)
    pg = postgres_row(product, datetime.now(UTC))
    assert pg["synthetic_fields"] == [] and pg["roi_box"] == product.box.as_list()
    assert str(pg["image_ref"]).startswith("base64:")
    stored = pg["base_embedding"]
    assert isinstance(stored, bytes)  # the one float16 codec: what training and re-index read
    assert np.allclose(decode_base(stored), product.embedding, atol=1e-3)
