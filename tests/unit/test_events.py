import json

import pytest
from pydantic import ValidationError

from processors.decoding import MAX_DEPTH, MAX_EVENT_BYTES, decode_json_event, too_deep
from processors.errors import ProcessingError
from schemas.dead_letter import DeadLetter, ErrorKind
from schemas.events import (
    MAX_VERSION,
    ProductDelete,
    ProductUpsert,
    UnknownSchemaVersion,
    encode_event,
    parse_product_event,
    product_event_json_schema,
)
from schemas.topics import ALL

UPSERT = {
    "schema_version": 1,
    "type": "product.upsert",
    "product_id": "sku-1",
    "version": 3,
    "title": "Red dress",
    "category": "dress",
    "price": "19.99",
    "currency": "EUR",
    "image": {"path": "/tmp/x.png"},
}


def test_upsert_round_trips_through_json() -> None:
    event = parse_product_event(UPSERT)
    assert isinstance(event, ProductUpsert)
    again = parse_product_event(json.loads(encode_event(event)))
    assert again == event


def test_delete_is_discriminated_by_type() -> None:
    event = parse_product_event(
        {"schema_version": 1, "type": "product.delete", "product_id": "sku-1", "version": 4}
    )
    assert isinstance(event, ProductDelete)


@pytest.mark.parametrize("version", [2, 0, None, "1"])
def test_unknown_schema_version_is_refused(version: object) -> None:
    with pytest.raises(UnknownSchemaVersion, match="schema_version"):
        parse_product_event({**UPSERT, "schema_version": version})


@pytest.mark.parametrize(
    "change",
    [
        {"price": "-1"},
        {"currency": "euro"},
        {"product_id": "has space"},
        {"version": -1},
        {"image": {}},
        {"image": {"path": "/a.png", "url": "https://x/a.png"}},
        {"image": {"url": "ftp://x/a.png"}},
        {"unexpected": 1},
    ],
)
def test_schema_violations_are_refused(change: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        parse_product_event({**UPSERT, **change})


def test_missing_field_is_refused() -> None:
    payload = dict(UPSERT)
    del payload["title"]
    with pytest.raises(ValidationError, match="title"):
        parse_product_event(payload)


def test_json_schema_exports_both_event_types() -> None:
    schema = product_event_json_schema()
    text = json.dumps(schema)
    assert "ProductUpsert" in text and "ProductDelete" in text
    assert "schema_version" in text


def test_topic_names_are_versioned() -> None:
    assert all(name.endswith(".v1") for name in ALL)


def test_dead_letter_keeps_original_bytes() -> None:
    raw = b"\x00\xffnot json"
    dl = DeadLetter.wrap(
        raw, topic="t", partition=2, offset=7, kind=ErrorKind.NOT_JSON, message="bad"
    )
    back = DeadLetter.model_validate_json(dl.model_dump_json())
    assert back.original() == raw
    assert back.error_kind is ErrorKind.NOT_JSON
    assert (back.topic, back.partition, back.offset) == ("t", 2, 7)


def test_interaction_events_validate_their_shape() -> None:
    from schemas.interactions import Query, SearchImpression, Shown, parse_interaction_event

    impression = SearchImpression(
        impression_id="imp-1",
        session_id="s-1",
        query=Query(kind="product", product_id="p1"),
        results=[Shown(product_id="p2", position=1), Shown(product_id="p3", position=2)],
        model_version="m",
    )
    assert parse_interaction_event(json.loads(impression.model_dump_json())) == impression
    with pytest.raises(ValidationError, match="exactly its own field"):
        Query(kind="image", product_id="p1")
    with pytest.raises(ValidationError, match="distinct"):
        SearchImpression(
            impression_id="i",
            session_id="s",
            query=Query(kind="text", text="red dress"),
            results=[Shown(product_id="a", position=1), Shown(product_id="b", position=1)],
            model_version="m",
        )
    click = {"type": "interaction.click", "impression_id": "i", "session_id": "s",
             "product_id": "p", "schema_version": 1}  # fmt: skip
    assert parse_interaction_event(click).type == "interaction.click"
    with pytest.raises(UnknownSchemaVersion):
        parse_interaction_event({**click, "schema_version": 2})


def test_events_that_would_fail_the_stores_are_schema_violations() -> None:
    """Each of these passed the schema before and then failed its whole batch's store write."""

    good = {
        "schema_version": 1,
        "type": "product.upsert",
        "product_id": "a",
        "version": 1,
        "title": "T",
        "category": "dress",
        "price": "1.00",
        "currency": "EUR",
        "image": {"url": "https://cdn.example/a.png"},
    }
    for patch in (
        {"version": MAX_VERSION + 1},  # Milvus INT64 / Postgres BIGINT
        {"title": "red\x00dress"},  # Postgres text refuses NUL
        {"brand": "acme\x1b[31m"},
        {"category": "\U0001f600" * 64},  # 64 characters, 256 bytes: Milvus VARCHAR(64)
        {"image": {"path": "/x\x00.png"}},
    ):
        with pytest.raises(ProcessingError) as refused:
            decode_json_event(json.dumps({**good, **patch}).encode(), parse_product_event)
        assert refused.value.kind is ErrorKind.SCHEMA_VIOLATION, patch
    for patch in ({"version": MAX_VERSION}, {"category": "\U0001f600" * 16}, {"title": "Ünïcode"}):
        decode_json_event(json.dumps({**good, **patch}).encode(), parse_product_event)


def test_deep_or_huge_json_is_one_not_json_dead_letter_not_a_crash() -> None:

    for value in (
        b"[" * 100_000 + b"]" * 100_000,  # a RecursionError in json.loads before
        b'{"a":' * 5000 + b"1" + b"}" * 5000,
        b" " * (MAX_EVENT_BYTES + 1),
    ):
        with pytest.raises(ProcessingError) as refused:
            decode_json_event(value, parse_product_event)
        assert refused.value.kind is ErrorKind.NOT_JSON
    # brackets inside strings are text, not nesting; escaped quotes do not end a string
    assert too_deep(b'{"t": "' + b"[" * 500 + b'"}') is None
    assert too_deep(b'{"t": "\\"' + b"[" * 500 + b'"}') is None
    assert too_deep(b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1)) == MAX_DEPTH + 1
    assert too_deep(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH) is None


@pytest.mark.parametrize("version", [[], {}, [1], True, "1", 1.0, None])
def test_any_schema_version_value_is_refused_cleanly(version: object) -> None:
    """Found by the fuzzer: a list here raised TypeError (unhashable) and failed the batch."""
    payload = {"schema_version": version, "type": "product.delete", "product_id": "a", "version": 1}
    with pytest.raises(ProcessingError) as refused:
        decode_json_event(json.dumps(payload).encode(), parse_product_event)
    assert refused.value.kind is ErrorKind.UNKNOWN_SCHEMA_VERSION
