"""Product events through real Kafka and a real worker process into Postgres and Milvus."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

import numpy as np
import pytest

from processors.products import ProductProcessor
from schemas.attributes import CATEGORY_KEYS
from schemas.dead_letter import ErrorKind
from schemas.events import ImageRef, encode_event
from search.service import SearchService
from stores.base import FixedTarget
from streams.producer import ProductProducer
from tests.events import delete, photo, record, upsert
from tests.integration.conftest import Stack, Worker, wait_for
from tests.synthetic import encode, flat_png
from training.datasets import to_rgb

pytestmark = pytest.mark.services
N = 60


@pytest.fixture(scope="module")
def stack(make_stack: Callable[..., Stack]) -> Stack:
    # small limits so that "oversized" inputs are cheap to make
    return make_stack(max_image_bytes="150000", max_image_pixels="250000")


@pytest.fixture(scope="module")
def worker(stack: Stack, start_worker: Callable[[Stack], Worker]) -> Worker:
    return start_worker(stack)


@pytest.fixture(scope="module")
def indexed(stack: Stack, worker: Worker) -> list[str]:
    ids = [f"p{i:03d}" for i in range(N)]
    with ProductProducer(stack.settings.kafka_bootstrap, stack.settings.products_topic) as p:
        for i, pid in enumerate(ids):
            p.send(upsert(pid, 1, i))
    wait_for(lambda: stack.repo.count_products() == N, timeout=120)
    return ids


def test_every_product_is_indexed_in_both_stores(stack: Stack, indexed: list[str]) -> None:
    assert stack.repo.count_products() == N
    assert stack.index.count() == N
    rows = stack.index.get(indexed)
    assert sorted(rows) == indexed
    pg = stack.repo.get_products(indexed)
    for i, pid in enumerate(indexed):
        assert rows[pid].category == pg[pid]["category"] == photo(i)[1]
        assert pg[pid]["model_version"].startswith("efficientnet-lite0")
        assert pg[pid]["synthetic_fields"] == ["title", "price", "currency"]
        assert len(pg[pid]["roi_box"]) == 4 and pg[pid]["primary_colour"]


def test_every_streamed_product_gets_attributes_in_both_stores(
    stack: Stack, indexed: list[str]
) -> None:
    pg = stack.repo.get_products(indexed)
    attributes = stack.repo.get_attributes(indexed)
    rows = stack.index.get(indexed)
    correct = 0
    for i, pid in enumerate(indexed):
        category = pg[pid]["predicted_category"]
        assert category in CATEGORY_KEYS and pg[pid]["tagger_version"].startswith("attribute-")
        keys = [a["attribute_key"] for a in attributes[pid]]
        assert category in keys and any(k.startswith("department.") for k in keys)
        assert rows[pid].predicted_category == category
        assert sorted(rows[pid].attributes) == sorted(keys)
        assert set(rows[pid].attribute_scores) == set(keys)
        correct += category == f"category.{photo(i)[1]}"
    assert correct / len(indexed) > 0.75  # Fashion-MNIST train photos: ~0.9 measured


def test_indexed_products_are_searchable_by_their_photo(
    stack: Stack, indexed: list[str], processor: ProductProcessor
) -> None:
    service = SearchService(processor, FixedTarget(stack.index))
    queries = [to_rgb(photo(i)[0]) for i in range(5)]
    results = service.by_images(queries, k=3)
    for i, result in enumerate(results):
        assert result.ranked[0].product_id == indexed[i]
        assert result.ranked[0].score > 0.99


def test_duplicates_and_stale_versions_change_nothing(
    stack: Stack, worker: Worker, indexed: list[str]
) -> None:
    pid = indexed[0]
    before_pg = stack.repo.get_product(pid)
    before_milvus = stack.index.get([pid])[pid]
    consumed = worker.metric("stylestream_events_consumed_total")
    stale = worker.metric("stylestream_events_stale_total")
    stack.send_raw(
        [
            record(upsert(pid, 1, 0)),  # redelivered duplicate
            record(upsert(pid, 0, 7, title="Older title", category="bag")),  # stale
        ]
    )
    worker.wait_consumed(consumed + 2)
    wait_for(lambda: worker.metric("stylestream_events_stale_total") >= stale + 2)
    assert stack.repo.get_product(pid) == before_pg  # indexed_at unchanged too
    assert stack.index.get([pid])[pid] == before_milvus

    stack.send_raw([record(upsert(pid, 2, 7, category="bag"))])  # a newer version wins
    wait_for(lambda: (stack.repo.get_product(pid) or {}).get("version") == 2)
    assert stack.index.get([pid])[pid].category == "bag"
    assert stack.index.get([pid])[pid].version == 2


def test_deletes_remove_from_both_stores(stack: Stack, worker: Worker, indexed: list[str]) -> None:
    pid = indexed[1]
    stack.send_raw([record(delete(pid, 5))])
    wait_for(lambda: stack.repo.get_product(pid) is None)
    assert pid not in stack.index.get([pid])
    assert stack.repo.ledger([pid])[pid].deleted
    stale = worker.metric("stylestream_events_stale_total")
    stack.send_raw([record(upsert(pid, 4, 1))])  # older than the delete: stays deleted
    wait_for(lambda: worker.metric("stylestream_events_stale_total") >= stale + 1)
    assert stack.repo.get_product(pid) is None
    assert pid not in stack.index.get([pid])


def test_bad_inputs_go_to_the_dead_letter_topic_and_good_ones_are_indexed(
    stack: Stack, worker: Worker, indexed: list[str]
) -> None:
    good = [upsert(f"good-{i}", 1, 100 + i) for i in range(4)]
    unknown_version = json.loads(encode_event(upsert("bad-version", 1, 0)))
    unknown_version["schema_version"] = 2
    no_title = json.loads(encode_event(upsert("bad-schema", 1, 0)))
    del no_title["title"]
    noise = np.random.default_rng(0).integers(0, 255, (260, 260, 3), dtype=np.uint8)
    oversized = encode(noise)
    assert len(oversized) > 150_000
    too_many_pixels = encode(np.zeros((600, 600, 3), dtype=np.uint8))
    assert len(too_many_pixels) < 150_000

    def with_image(pid: str, data: bytes) -> tuple[bytes, bytes]:
        event = upsert(pid, 1, 0).model_dump(mode="json", exclude_none=True)
        event["image"] = {"data_base64": base64.b64encode(data).decode()}
        return pid.encode(), json.dumps(event).encode()

    bad: dict[str, tuple[bytes | None, bytes | None]] = {
        ErrorKind.NOT_JSON: (b"bad-json", b"{this is not json"),
        ErrorKind.SCHEMA_VIOLATION: (b"bad-schema", json.dumps(no_title).encode()),
        ErrorKind.UNKNOWN_SCHEMA_VERSION: (b"bad-version", json.dumps(unknown_version).encode()),
        ErrorKind.UNDECODABLE_IMAGE: with_image("bad-image", b"\x89PNG not really"),
        ErrorKind.IMAGE_TOO_LARGE: with_image("bad-bytes", oversized),
        ErrorKind.IMAGE_UNAVAILABLE: (
            b"bad-path",
            encode_event(
                upsert("bad-path", 1, 0).model_copy(
                    update={"image": ImageRef(path="/nonexistent/x.png")}
                )
            ),
        ),
    }
    records: list[tuple[bytes | None, bytes | None]] = []
    for g, b in zip(good, bad.values(), strict=False):
        records += [record(g), b]
    records += list(bad.values())[len(good) :]
    records.append(with_image("bad-pixels", too_many_pixels))
    stack.send_raw(records)

    letters = stack.dead_letters(expected=len(bad) + 1)
    by_key = {dl.original_key: dl for dl in letters}
    for kind, (key, value) in bad.items():
        assert key is not None
        dl = by_key[key.decode()]
        assert dl.error_kind == kind, dl
        assert stack.original(dl) == value
        assert dl.topic == stack.settings.products_topic and dl.offset >= 0
        assert dl.error_message
    assert by_key["bad-bytes"].original_stored  # over 256 KiB: kept in Postgres, by hash
    assert by_key["bad-pixels"].error_kind is ErrorKind.IMAGE_TOO_LARGE
    assert "pixels" in by_key["bad-pixels"].error_message
    assert "title" in by_key["bad-schema"].error_message
    wait_for(lambda: all(stack.repo.get_product(g.product_id) for g in good))
    assert all(g.product_id in stack.index.get([g.product_id]) for g in good)
    assert worker.running()  # the worker kept going
    assert worker.metric("stylestream_events_dead_lettered_total{error_kind=not_json}") >= 1


def test_worker_metrics_are_exposed(worker: Worker, indexed: list[str]) -> None:
    m = worker.metrics()
    assert m["stylestream_events_consumed_total"] >= N
    assert m["stylestream_products_indexed_total"] >= N
    assert m["stylestream_event_to_searchable_seconds_count"] >= N
    assert m["stylestream_batch_processing_seconds_count"] >= 1


def test_hostile_events_are_one_dead_letter_each_and_spare_their_neighbours(
    stack: Stack, worker: Worker, indexed: list[str]
) -> None:
    """Events that passed the schema and then failed their whole batch's store write (or
    crashed it), interleaved with good ones, through the real worker: each is one dead letter
    with its reason, every good neighbour is indexed, the worker lives on."""
    good = [upsert(f"calm-{i}", 1, 200 + i) for i in range(6)]

    def hostile(pid: str, **changes: object) -> tuple[bytes, bytes]:
        event = upsert(pid, 1, 0).model_dump(mode="json", exclude_none=True)
        event.update(changes)
        return pid.encode(), json.dumps(event).encode()

    def image(data: bytes) -> dict[str, str]:
        return {"data_base64": base64.b64encode(data).decode()}

    attacks = {
        "nul-title": (hostile("nul-title", title="red\x00dress"), ErrorKind.SCHEMA_VIOLATION),
        "huge-version": (hostile("huge-version", version=2**63), ErrorKind.SCHEMA_VIOLATION),
        "emoji-category": (
            hostile("emoji-category", category="\U0001f600" * 64),
            ErrorKind.SCHEMA_VIOLATION,
        ),
        "deep-json": ((b"deep-json", b'{"a":' * 5000 + b"1" + b"}" * 5000), ErrorKind.NOT_JSON),
        "passwd": (hostile("passwd", image={"path": "/etc/passwd"}), ErrorKind.IMAGE_UNAVAILABLE),
        "zero": (hostile("zero", image={"url": "file:///dev/zero"}), ErrorKind.IMAGE_UNAVAILABLE),
        "metadata": (
            hostile("metadata", image={"url": "http://169.254.169.254/latest/meta-data/"}),
            ErrorKind.IMAGE_UNAVAILABLE,
        ),
        "wide": (hostile("wide", image=image(flat_png(2400, 100))), ErrorKind.IMAGE_TOO_LARGE),
        "bomb": (
            hostile("bomb", image=image(flat_png(40_000, 1_000))),
            ErrorKind.IMAGE_TOO_LARGE,
        ),
    }
    records: list[tuple[bytes | None, bytes | None]] = []
    for g, (bad, _) in zip(good, attacks.values(), strict=False):
        records += [record(g), bad]
    records += [bad for bad, _ in list(attacks.values())[len(good) :]]
    stack.send_raw(records)

    letters = {dl.original_key: dl for dl in stack.dead_letters(keys=list(attacks))}
    for key, ((_, value), kind) in attacks.items():
        letter = letters[key]
        assert letter.error_kind is kind, (key, letter.error_message)
        assert stack.original(letter) == value and letter.error_message
    assert "non-public" in letters["metadata"].error_message  # the detail is for operators
    assert "no image roots" in letters["passwd"].error_message
    wait_for(lambda: all(stack.repo.get_product(g.product_id) for g in good))
    assert all(g.product_id in stack.index.get([g.product_id]) for g in good)
    assert worker.running()


def test_consumer_lag_is_exported_for_partitions_with_no_batch_yet(
    make_stack: Callable[..., Stack], start_worker: Callable[[Stack], Worker]
) -> None:
    """An idle worker's partitions have a lag too (0): it is read from the consumer's position
    until a partition's first batch (the gauge's timer ticks every 15 s)."""
    idle = make_stack(topic_partitions="3")
    worker = start_worker(idle)
    names = [f"stylestream_consumer_lag_events{{partition={p}}}" for p in range(3)]
    wait_for(lambda: all(worker.metrics().get(n) == 0 for n in names), timeout=60)
    worker.stop()
