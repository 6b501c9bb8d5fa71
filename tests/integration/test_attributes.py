"""Attributes end to end on real Postgres and Milvus: tagging with category fusion over the
index, both stores, the taxonomy migration, attribute filters and ranking through the API."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from processors.products import ProductProcessor, RawEvent, describe_images
from processors.tagger import fuse, knn_vote
from schemas.attributes import CATEGORY_KEYS, TAXONOMY_V1
from schemas.events import ImageRef, ProductUpsert, encode_event
from search import IndexNeighbours
from stores.base import FixedTarget
from stores.writer import ProductWriter
from tests.events import delete, photo, upsert
from tests.integration.conftest import Stack
from tests.synthetic import encode
from training.datasets import to_rgb
from training.synthetic_garments import SyntheticGarment, garments

pytestmark = pytest.mark.services
N_PHOTOS = 30


def _garment_event(
    pid: str, g: SyntheticGarment, version: int = 1, **changes: object
) -> ProductUpsert:
    b64 = base64.b64encode(encode(g.image)).decode()
    fields: dict[str, object] = {
        "category": "synthetic-" + g.kind,
        "image": ImageRef(data_base64=b64),
        "title": f"SYNTHETIC garment {pid}",
    }
    fields.update(changes)
    return upsert(pid, version, 0, **fields)


@pytest.fixture(scope="module")
def scenes() -> list[SyntheticGarment]:
    return list(garments(16, 777))


@pytest.fixture(scope="module")
def stack(
    make_stack: Callable[..., Stack],
    processor: ProductProcessor,
    scenes: list[SyntheticGarment],
) -> Stack:
    stack = make_stack(milvus_index="FLAT")
    fused = ProductProcessor(
        processor.embedder,
        processor.limits,
        processor.finder,
        processor.tagger,
        IndexNeighbours(FixedTarget(stack.index)),
    )
    writer = ProductWriter(FixedTarget(stack.index), stack.repo)
    photos = [upsert(f"f{i:03d}", 1, i) for i in range(N_PHOTOS)]
    writer.write(fused.process([RawEvent(encode_event(e)) for e in photos]))
    events = [_garment_event(f"s{i:03d}", g) for i, g in enumerate(scenes)]
    events[0] = _garment_event("s000", scenes[0], attributes=["material.denim", "season.summer"])
    writer.write(fused.process([RawEvent(encode_event(e)) for e in events]))
    return stack


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[TestClient]:
    with TestClient(create_app(stack.settings)) as c:
        yield c


def test_migration_seeds_the_taxonomy(stack: Stack) -> None:
    rows = stack.repo.taxonomy()
    assert [r["key"] for r in rows] == [a.key for a in TAXONOMY_V1]
    assert len(rows) >= 90 and {r["taxonomy_version"] for r in rows} == {1}


def test_synthetic_products_get_their_drawn_attributes(
    stack: Stack, scenes: list[SyntheticGarment]
) -> None:
    ids = [f"s{i:03d}" for i in range(len(scenes))]
    stored = stack.repo.get_attributes(ids)
    rows = stack.index.get(ids)
    category_hits = pattern_hits = 0
    for pid, g in zip(ids, scenes, strict=True):
        keys = {a["attribute_key"] for a in stored[pid]}
        assert sorted(rows[pid].attributes) == sorted(keys)
        category_hits += rows[pid].predicted_category in g.attributes
        pattern_hits += bool({k for k in g.attributes if k.startswith("pattern.")} & keys)
    assert category_hits >= 12 and pattern_hits >= 12, (category_hits, pattern_hits)


def test_catalogue_attributes_are_kept_beside_predicted_ones(stack: Stack) -> None:
    stored = {a["attribute_key"]: a for a in stack.repo.get_attributes(["s000"])["s000"]}
    assert stored["material.denim"]["source"] == "catalogue"
    assert stored["material.denim"]["confidence"] == 1.0
    assert stored["material.denim"]["model_version"] is None
    assert any(a["source"] == "model" and a["model_version"] for a in stored.values())


def test_category_fusion_votes_with_neighbours_never_itself(
    stack: Stack, processor: ProductProcessor
) -> None:
    tagger = processor.tagger
    assert tagger is not None
    lookup = IndexNeighbours(FixedTarget(stack.index))
    vector = np.asarray([stack.index.get(["f000"], with_vectors=True)["f000"].embedding])
    found = lookup.neighbours(vector.astype(np.float32), tagger.card.fusion_k, ["f000"])[0]
    assert len(found) == tagger.card.fusion_k and all(score < 0.9999 for _, score in found)
    # a new version of f000 is tagged from the model fused with exactly that vote
    event = upsert("f000", 2, 0)
    alone = processor.process([RawEvent(encode_event(event))]).upserts[0].tags
    with_index = ProductProcessor(
        processor.embedder, processor.limits, processor.finder, tagger, lookup
    )
    fused = with_index.process([RawEvent(encode_event(event))]).upserts[0].tags
    described = describe_images([to_rgb(photo(0)[0])], processor.embedder, processor.finder)
    model = tagger.predict(described.vectors, described.colour_matrix)[0].category_probs
    vote = knn_vote(found, tagger.card.category_keys)
    expected = fuse(model, vote, tagger.card.fusion_alpha)
    best = int(np.argmax(expected))
    assert fused.category == tagger.card.category_keys[best]
    assert fused.confidence == pytest.approx(float(expected[best]), abs=1e-4)
    assert alone.confidence == pytest.approx(float(model.max()), abs=1e-4)
    assert fused.category == "category.ankle-boot"  # Fashion-MNIST train photo 0


def test_a_newer_version_replaces_attributes_and_a_delete_removes_them(
    stack: Stack, processor: ProductProcessor, scenes: list[SyntheticGarment]
) -> None:
    writer = ProductWriter(FixedTarget(stack.index), stack.repo)
    event = _garment_event("tmp", scenes[1], attributes=["style.vintage"])
    writer.write(processor.process([RawEvent(encode_event(event))]))
    assert "style.vintage" in {
        a["attribute_key"] for a in stack.repo.get_attributes(["tmp"])["tmp"]
    }
    newer = _garment_event("tmp", scenes[1], version=2)
    writer.write(processor.process([RawEvent(encode_event(newer))]))
    keys = {a["attribute_key"] for a in stack.repo.get_attributes(["tmp"])["tmp"]}
    assert "style.vintage" not in keys and keys
    writer.write(processor.process([RawEvent(encode_event(delete("tmp", 3)))]))
    assert stack.repo.get_attributes(["tmp"]) == {}


def test_api_lists_the_taxonomy_with_counts(client: TestClient, stack: Stack) -> None:
    body = client.get("/v1/attributes").json()
    assert body["taxonomy_version"] == 1 and body["attributes"] >= 90
    counts = {a["key"]: a["products"] for g in body["groups"] for a in g["attributes"]}
    assert len(counts) == body["attributes"]
    assert counts["material.denim"] == 1
    assert sum(counts[k] for k in CATEGORY_KEYS) == stack.repo.count_products()
    assert {g["key"] for g in body["groups"]} >= {"category", "colour", "pattern", "material"}


def _search(client: TestClient, pid: str, **params: object) -> list[dict]:  # type: ignore[type-arg]
    r = client.get(f"/v1/products/{pid}/similar", params=params)
    assert r.status_code == 200, r.text
    return r.json()["results"]  # type: ignore[no-any-return]


def test_attribute_filters_any_of_within_a_group_all_groups(
    client: TestClient, stack: Stack
) -> None:
    ids = [f"s{i:03d}" for i in range(16)] + [f"f{i:03d}" for i in range(N_PHOTOS)]
    stored = {
        pid: {a["attribute_key"] for a in attrs}
        for pid, attrs in stack.repo.get_attributes(ids).items()
    }
    colours = ["colour.red", "colour.blue", "colour.pink"]
    got = _search(client, "f001", k=50, attributes=colours)
    expected = {p for p, keys in stored.items() if keys & set(colours) and p != "f001"}
    assert {r["product_id"] for r in got} == expected and expected
    both = _search(client, "f001", k=50, attributes=[*colours, "pattern.solid"])
    assert {r["product_id"] for r in both} == {p for p in expected if "pattern.solid" in stored[p]}
    assert all("pattern.solid" in r["attributes"] for r in both)


def test_explain_shows_visual_and_attribute_parts(client: TestClient) -> None:
    results = _search(client, "s003", k=5, explain=True)
    for r in results:
        c = r["components"]
        assert 0.0 <= c["attributes"] <= 1.0 and c["weight_attributes"] > 0
        total = (
            c["weight_visual"] * c["visual"]
            + c["weight_colour"] * c["colour"]
            + c["weight_attributes"] * c["attributes"]
        )
        assert r["score"] == pytest.approx(total, abs=1e-5)
    assert any(r["components"]["attributes"] > 0 for r in results)


def test_unknown_attribute_filters_are_a_clear_422(client: TestClient) -> None:
    r = client.get("/v1/products/f001/similar", params={"attributes": "colour.plaid"})
    assert r.status_code == 422 and "attributes" in r.text
    assert "Traceback" not in r.text


def test_product_endpoint_shows_its_attributes(client: TestClient) -> None:
    body = client.get("/v1/products/s000").json()
    keys = {a["attribute_key"]: a for a in body["attributes"]}
    assert keys["material.denim"]["source"] == "catalogue"
    assert body["predicted_category"] in keys and body["tagger_version"]
