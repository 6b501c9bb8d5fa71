"""Where the originals of large dead letters wait for a replay: Postgres, content-addressed
(the SHA-256 of the bytes is the key, so storing one twice changes nothing); and its in-memory
twin."""

from __future__ import annotations

import hashlib
import threading
from typing import Protocol

from sqlalchemy import Engine, select
from sqlalchemy.dialects.postgresql import insert

from schemas.tables import dead_letter_originals


class OriginalStore(Protocol):
    def put(self, original: bytes) -> str:
        """Keeps ``original``; returns its SHA-256 (hex)."""
        ...

    def get(self, sha256: str) -> bytes | None: ...


class PostgresOriginals:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def put(self, original: bytes) -> str:
        digest = hashlib.sha256(original).hexdigest()
        stmt = insert(dead_letter_originals).values(sha256=digest, original=original)
        with self.engine.begin() as conn:
            conn.execute(stmt.on_conflict_do_nothing(index_elements=["sha256"]))
        return digest

    def get(self, sha256: str) -> bytes | None:
        query = select(dead_letter_originals.c.original).where(
            dead_letter_originals.c.sha256 == sha256
        )
        with self.engine.connect() as conn:
            found = conn.execute(query).scalar_one_or_none()
        return bytes(found) if found is not None else None


class MemoryOriginals:
    def __init__(self) -> None:
        self._kept: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def put(self, original: bytes) -> str:
        digest = hashlib.sha256(original).hexdigest()
        with self._lock:
            self._kept.setdefault(digest, bytes(original))
        return digest

    def get(self, sha256: str) -> bytes | None:
        with self._lock:
            return self._kept.get(sha256)
