"""Waiting out a dependency inside an agent: retried until done, readiness says so meanwhile,
and an error that is the event's own is raised at once."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from streams.faults import Backoff, Dependencies, FaultMetrics, Heartbeat, until_done

FAST = Backoff(0.001, 0.002)


def deps() -> Dependencies:
    return Dependencies({}, FaultMetrics(CollectorRegistry()), Heartbeat(), FAST)


def test_a_failing_dependency_is_retried_until_it_answers_and_readiness_says_so() -> None:
    d = deps()
    seen: list[bool] = []

    async def attempt() -> str:
        seen.append(d.waiting)
        if len(seen) < 4:
            raise ConnectionError("down")
        return "done"

    assert asyncio.run(until_done("x", attempt, FAST, d)) == "done"
    assert seen == [False, True, True, True]  # not ready while it waited
    assert d.waiting is False


def test_an_error_that_is_not_retried_is_raised_at_once() -> None:
    d = deps()
    calls = 0

    async def attempt() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("down")
        raise ValueError("this event's own fault")

    with pytest.raises(ValueError):
        asyncio.run(
            until_done("x", attempt, FAST, d, retry_if=lambda e: isinstance(e, ConnectionError))
        )
    assert calls == 2 and d.waiting is False
