"""The binary rerank's float vectors, held in the serving process: candidates' rows and float16
vectors keyed by (product id, version). A version's vector never changes (a newer event is a
new key), so an entry is never stale and needs no invalidation; the least recently used go
when the byte budget is spent. At 1M products the rerank then reads nothing from Milvus.

Entries are kept where Python's garbage collector does not walk them: vectors in one float16
slab, rows packed as tuples of plain values (which CPython stops tracking after a pass or two),
in a plain dict. With rows kept as objects, a full collection walked every cached row: 325 ms
at 100k entries, 1 s at 300k, a pause any search could hit (NOTES.md)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

import numpy as np

from stores.base import IndexRow

Key = tuple[str, int]
ROW_BYTES = 400  # a packed row's tuples and strings, roughly
FIRST_SLOTS = 1024

_FIELDS = tuple(f.name for f in fields(IndexRow) if f.name != "embedding")
_MAPPINGS = frozenset(f.name for f in fields(IndexRow) if f.default_factory is dict)


def pack(row: IndexRow) -> tuple[Any, ...]:
    """``row`` without its vector, as nested tuples of plain values."""
    out: list[Any] = []
    for name in _FIELDS:
        value = getattr(row, name)
        if name in _MAPPINGS:  # flat: key, value, key, value... (no pairs to untrack first)
            value = tuple(x for item in sorted(value.items()) for x in item)
        elif isinstance(value, list):
            value = tuple(value)
        out.append(value)
    return tuple(out)


def unpack(packed: tuple[Any, ...]) -> IndexRow:
    values: dict[str, Any] = {
        name: dict(zip(value[::2], value[1::2], strict=True)) if name in _MAPPINGS else value
        for name, value in zip(_FIELDS, packed, strict=True)
    }
    return IndexRow(**values)


class VectorCache:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        # a plain dict in use order (re-inserted on use): the collector walks an OrderedDict
        # of 300k entries in ~70 ms, a dict in ~1 ms
        self._slots: dict[Key, tuple[Any, ...]] = {}  # (slab row, *packed row): one level deep
        self._free: list[int] = []
        self._slab: np.ndarray | None = None
        self._used = 0  # slab rows handed out so far
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._slots)

    def _entry_bytes(self, dim: int) -> int:
        return dim * 2 + ROW_BYTES

    def get_many(self, keys: Sequence[Key]) -> dict[Key, tuple[IndexRow, np.ndarray]]:
        """The cached ones of ``keys``: the row (no vector) and a copy of its float16 vector."""
        found: dict[Key, tuple[tuple[Any, ...], int]] = {}
        with self._lock:
            for key in keys:
                entry = self._slots.pop(key, None)
                if entry is not None:
                    self._slots[key] = entry  # now the most recently used
                    found[key] = (entry[1:], entry[0])
            self.hits += len(found)
            self.misses += len(keys) - len(found)
            if not found:
                return {}
            assert self._slab is not None
            vectors = self._slab[[slot for _, slot in found.values()]]  # a copy
        return {
            key: (unpack(packed), vector)
            for (key, (packed, _)), vector in zip(found.items(), vectors, strict=True)
        }

    def put(self, row: IndexRow) -> tuple[IndexRow, np.ndarray]:
        """Caches ``row`` (which must carry its embedding) under its own version; returns it as
        ``get_many`` would."""
        if row.embedding is None:
            raise ValueError(f"{row.product_id}: no embedding to cache")
        vector = np.asarray(row.embedding, dtype=np.float16).ravel()
        packed = pack(row)
        entry = (unpack(packed), vector)
        size = self._entry_bytes(len(vector))
        if size > self.max_bytes:
            return entry
        key = (row.product_id, row.version)
        with self._lock:
            old = self._slots.pop(key, None)
            if old is not None:
                self._free.append(old[0])
                self.bytes -= size
            while self.bytes + size > self.max_bytes and self._slots:
                self._free.append(self._slots.pop(next(iter(self._slots)))[0])
                self.bytes -= size
            slot = self._slot(len(vector))
            assert self._slab is not None
            self._slab[slot] = vector
            self._slots[key] = (slot, *packed)
            self.bytes += size
        return entry

    def _slot(self, dim: int) -> int:
        """A free slab row, growing the slab (doubling) when none is."""
        if self._free:
            return self._free.pop()
        capacity = max(1, self.max_bytes // self._entry_bytes(dim))
        if self._slab is None:
            self._slab = np.empty((min(FIRST_SLOTS, capacity), dim), dtype=np.float16)
        elif self._slab.shape[1] != dim:
            raise ValueError(f"vectors of {dim} dimensions in a cache of {self._slab.shape[1]}")
        if self._used == len(self._slab):
            grown = np.empty((min(capacity, 2 * len(self._slab)), dim), dtype=np.float16)
            grown[: self._used] = self._slab
            self._slab = grown
        self._used += 1
        return self._used - 1
