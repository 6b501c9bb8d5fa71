"""The result lists' product summaries (title, price...), cached for a few seconds: every
search page needs them, the same best sellers come back again and again, and a Postgres round
trip per request is the API's largest cost after the models (NOTES.md). A summary is at most
``ttl_s`` old; products missing from Postgres are not cached (they may arrive any moment)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

Fetch = Callable[[Sequence[str]], dict[str, dict[str, Any]]]


class SummaryCache:
    def __init__(
        self,
        fetch: Fetch,
        ttl_s: float = 2.0,
        max_items: int = 20_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self.ttl_s = ttl_s
        self.max_items = max_items
        self._clock = clock
        self._lock = threading.Lock()
        self._items: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()

    def get_summaries(self, product_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        if self.ttl_s <= 0:
            return self._fetch(product_ids)
        now = self._clock()
        found: dict[str, dict[str, Any]] = {}
        with self._lock:
            for pid in product_ids:
                entry = self._items.get(pid)
                if entry is not None and now - entry[0] < self.ttl_s:
                    found[pid] = entry[1]
                    self._items.move_to_end(pid)
        missing = [pid for pid in dict.fromkeys(product_ids) if pid not in found]
        if missing:
            fetched = self._fetch(missing)
            with self._lock:
                for pid, summary in fetched.items():
                    self._items[pid] = (now, summary)
                    self._items.move_to_end(pid)
                while len(self._items) > self.max_items:
                    self._items.popitem(last=False)
            found.update(fetched)
        return found
