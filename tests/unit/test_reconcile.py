"""The reconcile over the in-memory twins: drift of every kind found, then repaired to what
Postgres holds, and nothing left on a second run."""

from __future__ import annotations

from dataclasses import replace

from processors.products import ProductProcessor, RawEvent
from schemas.events import encode_event
from stores.base import FixedTarget
from stores.memory import MemoryRepository, MemoryVectorIndex
from stores.reconcile import Reconciler
from stores.writer import ProductWriter
from tests.events import delete, upsert


def test_drift_is_found_and_repaired_to_postgres(processor: ProductProcessor) -> None:
    index, repo = MemoryVectorIndex(), MemoryRepository()
    writer = ProductWriter(FixedTarget(index), repo)
    events = [upsert(f"d{i}", 2, i) for i in range(6)]
    writer.write(processor.process([RawEvent(encode_event(e)) for e in events]))
    writer.write(processor.process([RawEvent(encode_event(delete("d5", 3)))]))
    # drift, as a lost write or an old bug would leave it
    index.delete(["d0"])  # missing
    index.upsert([replace(index.get(["d1"], with_vectors=True)["d1"], version=1)])  # stale
    ghost = replace(index.get(["d2"], with_vectors=True)["d2"], product_id="ghost")
    index.upsert([ghost])  # extra: never in Postgres
    reconciler = Reconciler(repo, FixedTarget(index), chunk=2)
    found = reconciler.run(repair=False)[0]
    assert (found.missing, found.stale, found.extra) == (["d0"], ["d1"], ["ghost"])
    assert found.repaired == 0 and "ghost" in index.get(["ghost"])
    repaired = reconciler.run()[0]
    assert repaired.repaired == 3
    rows = index.get([f"d{i}" for i in range(6)] + ["ghost"], with_vectors=True)
    assert sorted(rows) == ["d0", "d1", "d2", "d3", "d4"]
    assert {pid: r.version for pid, r in rows.items()} == dict.fromkeys(sorted(rows), 2)
    assert rows["d0"].category == repo.get_product("d0")["category"]  # type: ignore[index]
    assert (
        rows["d0"].embedding is not None
        and abs(float(rows["d0"].embedding @ rows["d0"].embedding) - 1) < 1e-2
    )
    again = reconciler.run()[0]
    assert again.drifted == [] and again.repaired == 0


def test_a_product_of_an_earlier_base_model_is_not_repaired_into_this_space(
    processor: ProductProcessor,
) -> None:
    """Its stored embedding lives in another model's space: it waits for its event again."""
    index, repo = MemoryVectorIndex(), MemoryRepository()
    writer = ProductWriter(FixedTarget(index), repo)
    writer.write(
        processor.process([RawEvent(encode_event(upsert(f"m{i}", 1, i))) for i in range(3)])
    )
    repo._products["m0"]["model_version"] = "an-earlier-base-model"
    index.delete(["m0", "m1"])
    base = processor.embedder.model_version
    drift = Reconciler(repo, FixedTarget(index), base_model_version=base).run()[0]
    assert drift.missing == ["m0", "m1"]
    assert sorted(index.get(["m0", "m1", "m2"])) == ["m1", "m2"]
