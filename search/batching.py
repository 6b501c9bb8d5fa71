"""Dynamic micro-batching of concurrent image searches, as inference servers do: requests wait
in one bounded queue; a batch worker takes every query waiting (up to ``max_batch``) and runs
them as one ``SearchService.by_queries`` call, so each model runs once per batch instead of once
per request, on threads sized to the cores rather than oversubscribed by requests.

A lone query never waits for a batch to fill: a worker that finds one query waiting runs it at
once (``max_wait_s`` 0); batches form by themselves while earlier ones run. Two workers let one
batch's index search and rerank overlap the next batch's models.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

from search.service import ImageQuery, Result

Run = Callable[[Sequence[ImageQuery]], list[Result]]
_STOP = None


class SearchBusy(RuntimeError):
    """More queries wait than the queue holds, or none ran in time: retry later (a 503)."""


@dataclass(frozen=True)
class BatchConfig:
    max_batch: int = 16
    max_wait_s: float = 0.0  # once one query waits, how long to wait for more (0: never)
    queue_limit: int = 256  # queries waiting at most; more are refused at once
    workers: int = 2
    timeout_s: float = 30.0  # a query not answered by then is refused (SearchBusy)


class QueryBatcher:
    def __init__(
        self,
        run: Run,
        config: BatchConfig | None = None,
        on_batch: Callable[[int], None] = lambda size: None,
    ) -> None:
        self.config = config or BatchConfig()
        self._run = run
        self._on_batch = on_batch
        self._queue: queue.Queue[tuple[ImageQuery, Future[Result]] | None] = queue.Queue(
            self.config.queue_limit
        )
        self._threads = [
            threading.Thread(target=self._loop, name=f"search-batch-{i}", daemon=True)
            for i in range(self.config.workers)
        ]
        for thread in self._threads:
            thread.start()

    def search(self, query: ImageQuery) -> Result:
        future: Future[Result] = Future()
        try:
            self._queue.put_nowait((query, future))
        except queue.Full:
            raise SearchBusy(f"{self.config.queue_limit} searches are waiting already") from None
        try:
            return future.result(timeout=self.config.timeout_s)
        except TimeoutError:
            future.cancel()  # still queued: skipped; running: its result is dropped
            raise SearchBusy(f"no answer within {self.config.timeout_s} s") from None

    def close(self) -> None:
        for _ in self._threads:
            self._queue.put(_STOP)
        for thread in self._threads:
            thread.join(timeout=self.config.timeout_s)

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch, stop = self._gather(first)
            live = [(q, f) for q, f in batch if f.set_running_or_notify_cancel()]
            if live:
                self._on_batch(len(live))
                self._answer(live)
            if stop:
                return

    def _gather(
        self, first: tuple[ImageQuery, Future[Result]]
    ) -> tuple[list[tuple[ImageQuery, Future[Result]]], bool]:
        """The first query and every one waiting now (or until ``max_wait_s``)."""
        batch = [first]
        deadline = time.monotonic() + self.config.max_wait_s
        while len(batch) < self.config.max_batch:
            remaining = deadline - time.monotonic()
            try:
                item = (
                    self._queue.get(timeout=remaining)
                    if remaining > 0
                    else self._queue.get_nowait()
                )
            except queue.Empty:
                break
            if item is _STOP:
                return batch, True
            batch.append(item)
        return batch, False

    def _answer(self, batch: list[tuple[ImageQuery, Future[Result]]]) -> None:
        try:
            results = self._run([q for q, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                batch[0][1].set_exception(exc)
                return
            for one in batch:  # one bad query never fails its neighbours: each alone
                self._answer([one])
            return
        for (_, future), result in zip(batch, results, strict=True):
            future.set_result(result)
