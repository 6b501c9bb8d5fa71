"""Concurrent image searches batched into one model call (search/batching.py), with no
service: a fake run records the batches it is given."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import pytest

from search import ImageQuery, Result
from search.batching import BatchConfig, QueryBatcher, SearchBusy


class Gate:
    """A run that blocks on its first call until opened, and records every batch's ks."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.open = threading.Event()
        self.batches: list[list[int]] = []

    def __call__(self, queries: Sequence[ImageQuery]) -> list[Result]:
        self.batches.append([q.k for q in queries])
        self.entered.set()
        self.open.wait(10)
        if any(q.k == 13 for q in queries):
            raise ValueError("query 13 is poison")
        return [Result([], f"k={q.k}") for q in queries]


def query(k: int) -> ImageQuery:
    return ImageQuery(np.zeros((2, 2, 3), np.uint8), k=k)


def ask(batcher: QueryBatcher, k: int, out: dict[int, object]) -> threading.Thread:
    def go() -> None:
        try:
            out[k] = batcher.search(query(k)).model_version
        except Exception as exc:
            out[k] = exc

    thread = threading.Thread(target=go)
    thread.start()
    return thread


def wait_queued(batcher: QueryBatcher, n: int) -> None:
    for _ in range(1000):
        if batcher._queue.qsize() >= n:
            return
        threading.Event().wait(0.005)
    raise AssertionError(f"{n} queries never queued")


def test_a_lone_query_runs_alone_and_queries_waiting_meanwhile_run_as_one_batch() -> None:
    gate = Gate()
    batcher = QueryBatcher(gate, BatchConfig(max_batch=4, workers=1))
    out: dict[int, object] = {}
    first = ask(batcher, 1, out)
    assert gate.entered.wait(5)  # ran at once: nothing to wait for
    others = [ask(batcher, k, out) for k in range(2, 8)]
    wait_queued(batcher, 6)
    gate.open.set()
    for thread in [first, *others]:
        thread.join(10)
    batcher.close()
    assert gate.batches[0] == [1]
    assert [len(b) for b in gate.batches] == [1, 4, 2]  # at most max_batch each
    assert sorted(k for b in gate.batches for k in b) == list(range(1, 8))
    assert out == {k: f"k={k}" for k in range(1, 8)}  # each its own answer


def test_a_failing_query_fails_alone_and_its_batch_neighbours_are_answered() -> None:
    gate = Gate()
    batcher = QueryBatcher(gate, BatchConfig(workers=1))
    out: dict[int, object] = {}
    first = ask(batcher, 1, out)
    assert gate.entered.wait(5)
    others = [ask(batcher, k, out) for k in (12, 13, 14)]
    wait_queued(batcher, 3)
    gate.open.set()
    for thread in [first, *others]:
        thread.join(10)
    batcher.close()
    assert isinstance(out[13], ValueError) and "poison" in str(out[13])
    assert {k: out[k] for k in (1, 12, 14)} == {1: "k=1", 12: "k=12", 14: "k=14"}
    assert sorted(gate.batches[1]) == [12, 13, 14]  # tried together first, then one by one
    assert sorted(map(tuple, gate.batches[2:])) == [(12,), (13,), (14,)]


def test_a_full_queue_and_a_late_answer_are_refused_as_busy() -> None:
    gate = Gate()
    batcher = QueryBatcher(gate, BatchConfig(workers=1, queue_limit=2, timeout_s=0.2))
    out: dict[int, object] = {}
    first = ask(batcher, 1, out)
    assert gate.entered.wait(5)
    waiting = [ask(batcher, k, out) for k in (2, 3)]
    wait_queued(batcher, 2)
    with pytest.raises(SearchBusy, match="2 searches are waiting"):
        batcher.search(query(4))
    for thread in [first, *waiting]:
        thread.join(10)
    assert all(isinstance(out[k], SearchBusy) for k in (1, 2, 3))  # the gate held them
    gate.open.set()
    batcher.close()
    assert [k for b in gate.batches for k in b] == [1]  # the timed-out ones never ran
