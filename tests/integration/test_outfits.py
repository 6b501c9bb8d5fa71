"""Outfits on real Kafka and Postgres: written through the API (authenticated like the other
writes) or sent straight to outfits.v1, applied by a real worker in version order, bad records
dead-lettered with their reason while their neighbours are applied, read back by id and by
product, deleted."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.app import create_app
from processors.products import ProductProcessor
from schemas.dead_letter import ErrorKind
from schemas.outfits import OutfitItem, OutfitUpsert, encode_outfit_event
from stores.postgres_outfits import PostgresOutfits
from stylestream.cli import main
from tests.events import upsert
from tests.integration.conftest import Stack, Worker, wait_for

pytestmark = pytest.mark.services
KEY = "outfit-writer-key"


@pytest.fixture(scope="module")
def stack(make_stack: Callable[..., Stack], processor: ProductProcessor) -> Stack:
    stack = make_stack(milvus_index="FLAT")
    stack.write(processor, [upsert(f"o{i:03d}", 1, i) for i in range(10)])
    return stack


@pytest.fixture(scope="module")
def worker(stack: Stack, start_worker: Callable[[Stack], Worker]) -> Worker:
    return start_worker(stack)


@pytest.fixture(scope="module")
def keyed(stack: Stack) -> Iterator[TestClient]:
    settings = stack.settings.model_copy(update={"api_keys": [SecretStr(KEY)]})
    with TestClient(create_app(settings)) as c:
        yield c


def _send(stack: Stack, records: list[tuple[bytes, bytes]]) -> None:
    producer = stack.producer()
    for key, value in records:
        producer.send(stack.settings.outfits_topic, key=key, value=value)
    producer.flush()
    producer.close()


def _outfit(oid: str, version: int, top: str, shoes: str, **extra: object) -> bytes:
    event = OutfitUpsert(
        outfit_id=oid, version=version, source="simulated",
        items=[OutfitItem(product_id=top, role="top"), OutfitItem(product_id=shoes, role="shoes")],
        **extra,  # type: ignore[arg-type]
    )  # fmt: skip
    return encode_outfit_event(event)


def test_outfits_flow_from_kafka_into_postgres_in_version_order(
    stack: Stack, worker: Worker, keyed: TestClient
) -> None:
    bad = json.loads(_outfit("bad", 1, "o001", "o002"))
    bad["items"][1]["role"] = "top"
    _send(stack, [
        (b"k1", _outfit("k1", 2, "o001", "o007", title="second")),
        (b"k1", _outfit("k1", 1, "o001", "o009", title="first")),  # stale: an older version
        (b"bad", json.dumps(bad).encode()),
        (b"not-k2", _outfit("k2", 1, "o002", "o007")),
        (b"junk", b"\xff\xfe not json"),
        (b"k3", _outfit("k3", 1, "o003", "o007", label="incompatible", label_confidence=0.4)),
    ])  # fmt: skip
    body = wait_for(
        lambda: (r := keyed.get("/v1/outfits/k3")).status_code == 200 and r.json(), timeout=60
    )
    assert body["label"] == "incompatible" and body["label_confidence"] == pytest.approx(0.4)
    k1 = keyed.get("/v1/outfits/k1").json()
    assert k1["version"] == 2 and k1["title"] == "second"
    assert {i["product_id"] for i in k1["items"]} == {"o001", "o007"}
    letters = {dl.original_key: dl for dl in stack.dead_letters(keys=["bad", "not-k2", "junk"])}
    assert letters["bad"].error_kind is ErrorKind.SCHEMA_VIOLATION
    assert "one item per role" in letters["bad"].error_message
    assert letters["not-k2"].error_kind is ErrorKind.KEY_MISMATCH
    assert letters["junk"].error_kind is ErrorKind.NOT_JSON
    assert all(dl.topic == stack.settings.outfits_topic for dl in letters.values())
    held = keyed.get("/v1/products/o007/outfits").json()["outfits"]
    assert {o["outfit_id"] for o in held} == {"k1", "k3"}
    assert keyed.get("/v1/outfits/k2").status_code == 404
    assert worker.metric("stylestream_outfit_events_total{outcome=dead_lettered}") >= 3


def test_the_api_writes_outfits_through_kafka_and_deletes_them(
    stack: Stack, worker: Worker, keyed: TestClient
) -> None:
    outfit = {
        "items": [{"product_id": "o004", "role": "dress"}, {"product_id": "o005", "role": "bag"}],
        "source": "editorial",
        "title": "Evening",
    }
    assert keyed.post("/v1/outfits", json=outfit).status_code == 401  # writes need a key
    r = keyed.post("/v1/outfits", json=outfit, headers={"X-Api-Key": KEY})
    assert r.status_code == 202, r.text
    accepted = r.json()
    oid = accepted["outfit_id"]
    got = wait_for(
        lambda: (g := keyed.get(f"/v1/outfits/{oid}")).status_code == 200 and g.json(), timeout=60
    )
    assert got["version"] == accepted["version"] and got["source"] == "editorial"
    assert got["title"] == "Evening"
    refused = keyed.post(
        "/v1/outfits",
        json={**outfit, "items": [{"product_id": "o004", "role": "dress"},
                                  {"product_id": "o006", "role": "top"}]},
        headers={"X-Api-Key": KEY},
    )  # fmt: skip
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "invalid_outfit"
    assert keyed.post("/v1/outfits", json={**outfit, "source": "simulated"},
                      headers={"X-Api-Key": KEY}).status_code == 422  # fmt: skip
    assert keyed.delete(f"/v1/outfits/{oid}").status_code == 401
    gone = keyed.delete(f"/v1/outfits/{oid}", headers={"X-Api-Key": KEY})
    assert gone.status_code == 202 and gone.json()["version"] > accepted["version"]
    wait_for(lambda: keyed.get(f"/v1/outfits/{oid}").status_code == 404, timeout=60)
    # a replay of the old version cannot bring it back
    stale_before = worker.metric("stylestream_outfit_events_total{outcome=stale}")
    stale = OutfitUpsert(
        outfit_id=oid, version=accepted["version"], source="editorial",
        items=[OutfitItem(product_id="o004", role="dress"),
               OutfitItem(product_id="o005", role="bag")],
    )  # fmt: skip
    _send(stack, [(oid.encode(), encode_outfit_event(stale))])
    wait_for(
        lambda: worker.metric("stylestream_outfit_events_total{outcome=stale}") > stale_before,
        timeout=60,
    )
    assert keyed.get(f"/v1/outfits/{oid}").status_code == 404


def test_the_stylist_catalogue_is_produced_and_applied(
    stack: Stack, worker: Worker, tmp_path: Path
) -> None:
    """`catalog outfits` writes SIMULATED outfits; `produce outfits` validates and sends them
    (an invalid line is listed and not sent); the worker applies every one."""
    env = {f"STYLESTREAM_{k.upper()}": v for k, v in stack.overrides.items()}
    made = CliRunner().invoke(
        main,
        ["catalog", "outfits", "--garments", "35", "--photos", "10", "--outfits", "8",
         "--out", str(tmp_path)],
        env=env,
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    lines = (tmp_path / "outfits.jsonl").read_text().splitlines()
    assert 4 <= len(lines) <= 8
    broken = json.loads(lines[0])
    broken["items"] = broken["items"][:1]  # one item is no outfit
    (tmp_path / "mixed.jsonl").write_text("\n".join([*lines, json.dumps(broken)]) + "\n")
    sent = CliRunner().invoke(main, ["produce", "outfits", str(tmp_path / "mixed.jsonl"),
                                     "--no-progress"], env=env)  # fmt: skip
    assert sent.exit_code == 2 and f"sent {len(lines)}, invalid 1" in sent.output
    assert f"line {len(lines) + 1}:" in sent.output
    outfits = PostgresOutfits(stack.repo.engine)
    ids = [json.loads(x)["outfit_id"] for x in lines]
    wait_for(lambda: set(outfits.get_outfits(ids)) == set(ids), timeout=60)
    stored = outfits.get_outfits(ids)
    assert set(stored) == set(ids)
    assert all(o.title == "SIMULATED outfit" for o in stored.values())
