"""Outfit labels (issue 17): the store's interface, its row shape and the in-memory twin
(stores/postgres_outfits.py is the Postgres adapter; tests/contract/test_outfits.py holds both
to one contract).

Writes are idempotent and ordered by version, as for products: an upsert or delete applies
only over an older version, or a delete over a live outfit of its own version (a delete wins a
tie, in one batch or across two); a delete leaves a tombstone (its version), so an upsert
replayed after it is stale. Within a batch the newest event per outfit is the one that counts.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

from processors.outfits import OutfitEvent, newest
from schemas.outfits import OutfitDelete, OutfitUpsert


@dataclass(frozen=True)
class Outfit:
    outfit_id: str
    version: int
    label: str
    label_confidence: float
    source: str
    title: str | None
    items: tuple[tuple[str, str], ...]  # (role, product id), by role
    event_time: datetime

    @classmethod
    def of(cls, event: OutfitUpsert) -> Outfit:
        items = tuple(sorted((i.role, i.product_id) for i in event.items))
        return cls(event.outfit_id, event.version, event.label, event.label_confidence,
                   event.source, event.title, items, event.event_time)  # fmt: skip


__all__ = ["MemoryOutfits", "Outfit", "OutfitEvent", "OutfitRepository"]


def _wins(event: OutfitEvent, version: int, deleted: bool) -> bool:
    """Whether ``event`` applies over what is stored: a newer version, or a delete at the
    version of a live outfit (as for products, whichever batch each came in)."""
    if event.version != version:
        return event.version > version
    return isinstance(event, OutfitDelete) and not deleted


class OutfitRepository(Protocol):
    def apply(self, events: Sequence[OutfitEvent]) -> tuple[list[str], list[str]]:
        """Apply newer versions only, atomically: (upserted ids, deleted ids)."""
        ...

    def get_outfits(self, outfit_ids: Sequence[str]) -> dict[str, Outfit]:
        """The live ones among ``outfit_ids``."""
        ...

    def outfits_with(self, product_id: str, limit: int = 50) -> list[Outfit]:
        """Live outfits holding the product, newest first."""
        ...

    def versions(self, outfit_ids: Sequence[str]) -> dict[str, tuple[int, bool]]:
        """Each known outfit's version and whether it is deleted (tombstones included)."""
        ...

    def count(self, source: str | None = None) -> int:
        """Live outfits (of one source)."""
        ...


class MemoryOutfits:
    """The twin: the same contract in a dict."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: dict[str, Outfit] = {}
        self._versions: dict[str, tuple[int, bool]] = {}

    def apply(self, events: Sequence[OutfitEvent]) -> tuple[list[str], list[str]]:
        upserted: list[str] = []
        deleted: list[str] = []
        with self._lock:
            for e in newest(events):
                known = self._versions.get(e.outfit_id)
                if known is not None and not _wins(e, *known):
                    continue
                if isinstance(e, OutfitDelete):
                    self._versions[e.outfit_id] = (e.version, True)
                    self._live.pop(e.outfit_id, None)
                    deleted.append(e.outfit_id)
                else:
                    self._versions[e.outfit_id] = (e.version, False)
                    self._live[e.outfit_id] = Outfit.of(e)
                    upserted.append(e.outfit_id)
        return upserted, deleted

    def get_outfits(self, outfit_ids: Sequence[str]) -> dict[str, Outfit]:
        with self._lock:
            return {i: replace(self._live[i]) for i in outfit_ids if i in self._live}

    def outfits_with(self, product_id: str, limit: int = 50) -> list[Outfit]:
        with self._lock:
            found = [o for o in self._live.values() if product_id in (p for _, p in o.items)]
        found.sort(key=lambda o: (o.event_time, o.outfit_id), reverse=True)
        return found[:limit]

    def versions(self, outfit_ids: Sequence[str]) -> dict[str, tuple[int, bool]]:
        with self._lock:
            return {i: self._versions[i] for i in outfit_ids if i in self._versions}

    def count(self, source: str | None = None) -> int:
        with self._lock:
            return sum(source is None or o.source == source for o in self._live.values())
