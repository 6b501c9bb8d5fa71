"""The API's cache of result summaries: fresh for ttl_s, bounded, misses never cached."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from stores.summaries import SummaryCache


class Table:
    def __init__(self) -> None:
        self.rows = {f"p{i}": {"title": f"t{i}"} for i in range(5)}
        self.asked: list[list[str]] = []

    def fetch(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        self.asked.append(list(ids))
        return {i: dict(self.rows[i]) for i in ids if i in self.rows}


def test_summaries_are_served_from_cache_until_they_are_ttl_old() -> None:
    now = [0.0]
    table = Table()
    cache = SummaryCache(table.fetch, ttl_s=2.0, clock=lambda: now[0])
    assert cache.get_summaries(["p0", "p1"]) == {"p0": {"title": "t0"}, "p1": {"title": "t1"}}
    table.rows["p0"]["title"] = "new"
    now[0] = 1.9
    assert cache.get_summaries(["p1", "p0", "p2"])["p0"] == {"title": "t0"}  # still fresh
    assert table.asked == [["p0", "p1"], ["p2"]]  # only the one not cached
    now[0] = 2.0
    assert cache.get_summaries(["p0"]) == {"p0": {"title": "new"}}  # too old: read again


def test_unknown_products_are_asked_again_and_the_cache_stays_bounded() -> None:
    table = Table()
    cache = SummaryCache(table.fetch, ttl_s=60, max_items=3, clock=lambda: 0.0)
    assert cache.get_summaries(["nope"]) == {}
    table.rows["nope"] = {"title": "arrived"}
    assert cache.get_summaries(["nope"]) == {"nope": {"title": "arrived"}}
    cache.get_summaries(["p0", "p1", "p2", "p3"])
    assert len(cache._items) == 3
    table.asked.clear()
    cache.get_summaries(["p3", "p0"])  # p3 kept (newest), p0 evicted (oldest)
    assert table.asked == [["p0"]]


def test_a_zero_ttl_reads_every_time() -> None:
    table = Table()
    cache = SummaryCache(table.fetch, ttl_s=0)
    cache.get_summaries(["p0"])
    cache.get_summaries(["p0"])
    assert table.asked == [["p0"], ["p0"]]
