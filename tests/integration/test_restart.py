"""A worker killed mid-stream (SIGKILL: no clean shutdown, no final commit) and restarted
leaves every product indexed exactly once."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from streams.producer import ProductProducer
from tests.events import upsert
from tests.integration.conftest import Stack, Worker, wait_for

pytestmark = pytest.mark.services
N = 400


def test_killed_worker_restarts_without_loss_or_duplicates(
    make_stack: Callable[..., Stack], start_worker: Callable[[Stack], Worker]
) -> None:
    stack = make_stack(batch_max="16", kafka_session_timeout_s="6")
    ids = [f"k{i:04d}" for i in range(N)]
    with ProductProducer(stack.settings.kafka_bootstrap, stack.settings.products_topic) as p:
        for i, pid in enumerate(ids):
            p.send(upsert(pid, 1, i))

    first = start_worker(stack)
    wait_for(lambda: stack.repo.count_products() >= 40, timeout=120, interval=0.05)
    first.kill()
    committed_before = stack.repo.count_products()
    assert 0 < committed_before < N, "the kill must land mid-stream"

    second = start_worker(stack)
    wait_for(lambda: stack.repo.count_products() == N, timeout=180)
    wait_for(lambda: second.metric("stylestream_events_consumed_total") > 0)

    # exactly once, in both stores
    assert stack.repo.count_products() == N
    assert stack.index.count() == N
    rows = stack.index.get(ids)
    assert sorted(rows) == ids and all(r.version == 1 for r in rows.values())
    assert all(e.version == 1 and not e.deleted for e in stack.repo.ledger(ids).values())
    # the restarted worker re-wrote none of what was already committed: products committed
    # before the kill that it consumed again were skipped as stale, not indexed twice
    wait_for(
        lambda: second.metric("stylestream_products_indexed_total") == N - committed_before,
        timeout=30,
    )
    second.stop()
