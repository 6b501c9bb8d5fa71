"""The outfit handler without a broker: valid records written, bad ones dead-lettered with their
reason, a store outage waited out (never dead-lettered), one outfit a healthy store refuses
dead-lettered alone while its neighbours are written."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry

from processors.products import RawEvent
from schemas.dead_letter import ErrorKind
from schemas.outfits import OutfitDelete, OutfitItem, OutfitUpsert, encode_outfit_event
from stores.outfits import MemoryOutfits, OutfitEvent
from streams.faults import Backoff, Dependencies, FaultMetrics, Heartbeat
from streams.metrics import WorkerMetrics
from streams.outfits import OutfitHandler


def outfit(oid: str, version: int = 1) -> OutfitUpsert:
    return OutfitUpsert(
        outfit_id=oid,
        version=version,
        source="simulated",
        items=[OutfitItem(product_id=f"{oid}-top", role="top"),
               OutfitItem(product_id=f"{oid}-shoes", role="shoes")],
    )  # fmt: skip


def record(value: bytes | OutfitEvent, key: str, offset: int = 0) -> RawEvent:
    data = value if isinstance(value, bytes) else encode_outfit_event(value)
    return RawEvent(data, "outfits.v1", 0, offset, key.encode())


class Flaky(MemoryOutfits):
    """A store down for ``outage`` calls, and refusing any batch holding ``poison``."""

    def __init__(self, outage: int = 0, poison: str | None = None) -> None:
        super().__init__()
        self.outage = outage
        self.poison = poison
        self.calls = 0

    def apply(self, events: Sequence[OutfitEvent]) -> tuple[list[str], list[str]]:
        self.calls += 1
        if self.outage > 0:
            self.outage -= 1
            raise ConnectionError("connection refused")
        if any(e.outfit_id == self.poison for e in events):
            raise ValueError("value too long for type character varying(16)")
        return super().apply(events)


def make(store: MemoryOutfits) -> tuple[OutfitHandler, list[float]]:
    slept: list[float] = []
    metrics = WorkerMetrics()

    def probe() -> None:
        return None  # the store is up: its errors are its own

    dependencies = Dependencies(
        {"postgres": probe}, FaultMetrics(metrics.registry), Heartbeat(), Backoff(0.5, 4.0),
        sleep=slept.append,
    )  # fmt: skip
    return OutfitHandler(store, metrics, dependencies), slept


def count(handler: OutfitHandler, outcome: str) -> float:
    registry: CollectorRegistry = handler.metrics.registry
    return registry.get_sample_value("stylestream_outfit_events_total", {"outcome": outcome}) or 0


def test_valid_outfits_are_written_and_bad_records_dead_lettered_with_their_reason() -> None:
    store = MemoryOutfits()
    handler, slept = make(store)
    bad: dict[str, Any] = json.loads(encode_outfit_event(outfit("x")))
    bad["items"][1]["role"] = "top"  # two tops
    records = [
        record(outfit("a"), "a", 0),
        record(b"{not json", "b", 1),
        record(json.dumps(bad).encode(), "x", 2),
        record(outfit("c"), "not-c", 3),
        record(json.dumps({**json.loads(encode_outfit_event(outfit("d"))),
                           "schema_version": 9}).encode(), "d", 4),
        record(outfit("a", 2), "a", 5),
        record(OutfitDelete(outfit_id="e", version=1), "e", 6),
    ]  # fmt: skip
    handled = handler.handle(records)
    kinds = {dl.offset: dl.error_kind for dl in handled.dead_letters}
    assert kinds == {
        1: ErrorKind.NOT_JSON,
        2: ErrorKind.SCHEMA_VIOLATION,
        3: ErrorKind.KEY_MISMATCH,
        4: ErrorKind.UNKNOWN_SCHEMA_VERSION,
    }
    two_tops = next(d for d in handled.dead_letters if d.offset == 2)
    assert "one item per role" in two_tops.error_message
    assert store.versions(["a", "e"]) == {"a": (2, False), "e": (1, True)}
    assert (count(handler, "applied"), count(handler, "deleted")) == (1, 1)
    assert (count(handler, "stale"), count(handler, "dead_lettered")) == (1, 4)
    assert slept == []
    again = handler.handle(records[:1])  # a redelivery changes nothing
    assert again.dead_letters == [] and count(handler, "stale") == 2


def test_a_store_outage_is_waited_out_never_dead_lettered() -> None:
    store = Flaky(outage=3)
    handler, slept = make(store)
    handled = handler.handle([record(outfit("a"), "a"), record(outfit("b"), "b", 1)])
    assert handled.dead_letters == [] and store.count() == 2
    assert sum(slept) == 0.5 + 1.0 + 2.0 and store.calls == 4  # three backoffs, one success


def test_one_outfit_a_healthy_store_refuses_is_dead_lettered_alone() -> None:
    store = Flaky(poison="b")
    handler, _ = make(store)
    records = [record(outfit(o), o, i) for i, o in enumerate("abcd")]
    handled = handler.handle(records)
    assert [(d.offset, d.error_kind) for d in handled.dead_letters] == [(1, ErrorKind.STORE_ERROR)]
    assert "character varying" in handled.dead_letters[0].error_message
    assert set(store.get_outfits(list("abcd"))) == {"a", "c", "d"}


def test_a_store_refusing_every_outfit_alike_is_waited_on_before_any_dead_letter() -> None:
    class Broken(MemoryOutfits):
        def apply(self, events: Sequence[OutfitEvent]) -> tuple[list[str], list[str]]:
            raise ValueError('relation "outfit_items" does not exist')

    handler, slept = make(Broken())
    handler.alike_retries = 2
    handled = handler.handle([record(outfit(o), o, i) for i, o in enumerate("abcd")])
    assert len(handled.dead_letters) == 4  # after the retries: replayable, counted
    stalls = handler.dependencies.metrics.stalls
    assert stalls._value.get() == 2 and slept
