"""The outfit store's contract, on the twin and on Postgres: newer versions only, tombstones,
the newest event of a batch, reads by id and by product, counts by source."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from schemas.outfits import OutfitDelete, OutfitItem, OutfitUpsert
from stores.outfits import MemoryOutfits, OutfitRepository
from stores.postgres_outfits import PostgresOutfits
from tests.contract.conftest import contract_database, services

T0 = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture(params=["memory", pytest.param("postgres", marks=services)])
def store(request: pytest.FixtureRequest) -> Iterator[OutfitRepository]:
    if request.param == "memory":
        yield MemoryOutfits()
        return
    with contract_database(request) as postgres:
        yield PostgresOutfits(postgres.engine)


def up(oid: str, version: int, *items: tuple[str, str], **extra: object) -> OutfitUpsert:
    pairs = items or (("top", f"{oid}-t"), ("bottom", f"{oid}-b"))
    return OutfitUpsert(
        outfit_id=oid,
        version=version,
        items=[OutfitItem(product_id=p, role=r) for r, p in pairs],  # type: ignore[arg-type]
        source=extra.pop("source", "simulated"),  # type: ignore[arg-type]
        event_time=T0 + timedelta(minutes=version),
        **extra,  # type: ignore[arg-type]
    )


def down(oid: str, version: int) -> OutfitDelete:
    return OutfitDelete(outfit_id=oid, version=version, event_time=T0)


def test_only_newer_versions_apply_and_deletes_leave_tombstones(store: OutfitRepository) -> None:
    assert store.apply([up("a", 2), up("b", 1)]) == (["a", "b"], [])
    assert store.apply([up("a", 2, title="dup")]) == ([], [])
    assert store.apply([up("a", 1)]) == ([], [])
    assert store.get_outfits(["a"])["a"].title is None
    assert store.apply([down("b", 0)]) == ([], [])  # older than the upsert
    assert store.apply([down("b", 1)]) == ([], ["b"])  # a delete wins a tie, across batches
    assert store.apply([down("b", 1)]) == ([], [])  # and only once
    assert store.apply([down("b", 3)]) == ([], ["b"])
    assert store.get_outfits(["b"]) == {} and store.versions(["b"]) == {"b": (3, True)}
    assert store.apply([up("b", 3)]) == ([], [])  # stale after the delete
    assert store.apply([up("b", 4)]) == (["b"], [])  # a newer version returns
    assert store.apply([down("never", 5)]) == ([], ["never"])  # a tombstone for the unseen
    assert store.apply([up("never", 4)]) == ([], [])
    assert store.versions(["a", "b", "never", "zz"]) == {
        "a": (2, False),
        "b": (4, False),
        "never": (5, True),
    }
    assert store.apply([]) == ([], [])


def test_the_newest_event_of_a_batch_counts(store: OutfitRepository) -> None:
    batch: list[OutfitUpsert | OutfitDelete] = [
        up("c", 1),
        up("c", 3, title="third"),
        up("c", 2),
        up("d", 2),
        down("d", 2),
    ]
    assert store.apply(batch) == (["c"], ["d"])  # a delete wins a tie
    assert store.get_outfits(["c"])["c"].title == "third"


def test_an_update_replaces_the_items_and_labels(store: OutfitRepository) -> None:
    store.apply([up("e", 1, ("top", "p1"), ("bottom", "p2"), ("shoes", "p3"))])
    store.apply([up("e", 2, ("dress", "p4"), ("shoes", "p3"), label="incompatible",
                    label_confidence=0.7, source="editorial", title="Evening")])  # fmt: skip
    got = store.get_outfits(["e", "nope"])
    assert list(got) == ["e"]
    outfit = got["e"]
    assert outfit.items == (("dress", "p4"), ("shoes", "p3"))
    assert (outfit.label, outfit.source, outfit.title) == ("incompatible", "editorial", "Evening")
    assert outfit.label_confidence == pytest.approx(0.7)
    assert outfit.version == 2 and outfit.event_time == T0 + timedelta(minutes=2)
    assert store.outfits_with("p1") == []


def test_outfits_are_found_by_product_newest_first_and_counted(store: OutfitRepository) -> None:
    store.apply([up("f1", 1, ("top", "shared"), ("bottom", "x1")),
                 up("f2", 5, ("bag", "shared"), ("shoes", "x2"), source="user"),
                 up("f3", 3, ("top", "other"), ("bottom", "x3"))])  # fmt: skip
    assert [o.outfit_id for o in store.outfits_with("shared")] == ["f2", "f1"]
    assert [o.outfit_id for o in store.outfits_with("shared", limit=1)] == ["f2"]
    store.apply([down("f2", 6)])
    assert [o.outfit_id for o in store.outfits_with("shared")] == ["f1"]
    assert store.count() == 2 and store.count("simulated") == 2 and store.count("user") == 0
