"""The miner's random negatives follow the catalogue (no service: the in-memory repository)."""

from __future__ import annotations

from processors.products import ProductProcessor, RawEvent
from schemas.events import encode_event
from stores.base import FixedTarget
from stores.memory import MemoryRepository, MemoryVectorIndex
from stores.writer import ProductWriter
from streams.miner import CatalogueSampler
from tests.events import upsert


def test_random_negatives_follow_the_catalogue(processor: ProductProcessor) -> None:
    repo = MemoryRepository()
    writer = ProductWriter(FixedTarget(MemoryVectorIndex()), repo)

    def write(*ids: str) -> None:
        events = [upsert(pid, 1, i) for i, pid in enumerate(ids)]
        writer.write(processor.process([RawEvent(encode_event(e)) for e in events]))

    now = [0.0]
    sampler = CatalogueSampler(repo, refresh_s=60, clock=lambda: now[0])
    assert sampler.sample(1, 5, set()) == []  # empty catalogue: re-read every second
    write(*(f"c{i}" for i in range(8)))
    assert sampler.sample(1, 5, set()) == []  # not a second later yet
    now[0] = 1.5
    assert len(sampler.sample(1, 5, set())) == 5
    assert "c3" not in sampler.sample(1, 8, {"c3"})
    write("fresh-one")
    assert "fresh-one" not in sampler.sample(1, 500, set())  # not re-read yet
    now[0] = 62.0
    assert "fresh-one" in sampler.sample(1, 500, set())
    assert sampler.sample(7, 4, set()) == sampler.sample(7, 4, set())  # seeded: replays agree
