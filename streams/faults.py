"""Waiting out a dependency instead of dead-lettering its events, and telling Kubernetes the
truth about it: the stores' health probes, a capped exponential backoff, and the batch loop's
heartbeat that the worker's liveness endpoint reads."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from prometheus_client import Counter, Gauge

log = logging.getLogger(__name__)
Done = TypeVar("Done")


@dataclass(frozen=True)
class Backoff:
    first_s: float = 0.5
    cap_s: float = 30.0

    def delay(self, attempt: int) -> float:
        """Seconds before retry number ``attempt`` (1, 2, ...): doubling, capped."""
        return float(min(self.cap_s, self.first_s * 2.0 ** max(0, attempt - 1)))


class Heartbeat:
    """When the batch loop last showed progress; ``busy`` while it holds a batch. The loop is
    alive when idle (the event loop ticks it) or when its batch keeps beating (waits beat)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._last = clock()
        self.busy = False
        self._lock = threading.Lock()

    def beat(self) -> None:
        with self._lock:
            self._last = self.clock()

    def age_s(self) -> float:
        with self._lock:
            return self.clock() - self._last

    def alive(self, stall_s: float) -> bool:
        return self.age_s() <= stall_s


class FaultMetrics:
    def __init__(self, registry: object) -> None:
        r = registry
        self.up = Gauge(
            "stylestream_dependency_up",
            "1 while the dependency answers its probe, 0 while the worker waits for it",
            ["dependency"],
            registry=r,  # type: ignore[arg-type]
        )
        self.waits = Counter(
            "stylestream_dependency_waits",
            "Retries of a batch held back by a failing dependency",
            ["dependency"],
            registry=r,  # type: ignore[arg-type]
        )
        self.stalls = Counter(
            "stylestream_batch_stalls",
            "Batches retried because every event failed alike (not the events' fault)",
            registry=r,  # type: ignore[arg-type]
        )


class Dependencies:
    """The stores a batch needs, each with a probe that raises while it is unreachable."""

    def __init__(
        self,
        probes: Mapping[str, Callable[[], None]],
        metrics: FaultMetrics,
        heartbeat: Heartbeat,
        backoff: Backoff | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.probes = dict(probes)
        self.metrics = metrics
        self.heartbeat = heartbeat
        self.backoff = backoff or Backoff()
        self.sleep = sleep
        self.waiting = False  # the worker's readiness
        for name in self.probes:
            metrics.up.labels(dependency=name).set(1)

    def down(self) -> list[str]:
        failing = []
        for name, probe in self.probes.items():
            try:
                probe()
            except Exception as exc:  # a probe's failure of any kind means "not now"
                log.debug("%s probe failed: %s", name, exc)
                failing.append(name)
            self.metrics.up.labels(dependency=name).set(name not in failing)
        return failing

    def pause(self, attempt: int, why: str, blamed: str = "store") -> None:
        """Wait one backoff step, then for as long as any dependency stays down."""
        self.waiting = True
        try:
            self.metrics.waits.labels(dependency=blamed).inc()
            log.warning("retrying in %.1fs (attempt %d): %s", self.backoff.delay(attempt),
                        attempt, why)  # fmt: skip
            self._sleep(self.backoff.delay(attempt))
            down = self.down()
            while down:
                attempt += 1
                for name in down:
                    self.metrics.waits.labels(dependency=name).inc()
                log.warning("waiting for %s (retry in %.1fs)", ", ".join(down),
                            self.backoff.delay(attempt))  # fmt: skip
                self._sleep(self.backoff.delay(attempt))
                down = self.down()
        finally:
            self.waiting = False

    def _sleep(self, seconds: float) -> None:
        """Sleeps in steps, beating, so a long wait is not mistaken for a stuck loop."""
        left = seconds
        while left > 0:
            self.heartbeat.beat()
            self.sleep(min(left, 1.0))
            left -= 1.0
        self.heartbeat.beat()


async def until_done(
    what: str,
    attempt: Callable[[], Awaitable[Done]],
    backoff: Backoff,
    dependencies: Dependencies | None = None,
    retry_if: Callable[[Exception], bool] = lambda exc: True,
) -> Done:
    """``attempt()`` until it succeeds: for a dependency (Kafka, Postgres) whose failure must
    hold the event back rather than lose it; an agent must not raise (Faust would ack). An
    error ``retry_if`` refuses is raised (the event's own fault). While it retries,
    ``dependencies`` says so (readiness) and its heartbeat beats (a wait is not a stall)."""
    tries = 0
    try:
        while True:
            try:
                return await attempt()
            except Exception as exc:
                if not retry_if(exc):
                    raise
                tries += 1
                delay = backoff.delay(tries)
                log.warning("%s failed (%s: %s); again in %.1fs", what, type(exc).__name__, exc,
                            delay)  # fmt: skip
                if dependencies is not None:
                    dependencies.waiting = True
                    dependencies.heartbeat.beat()
                await asyncio.sleep(delay)
    finally:
        if tries and dependencies is not None:
            dependencies.waiting = False
