"""Session and impression ids issued by the API and signed with its key (HMAC-SHA256), so a
click can be reported only on an impression this API served, in the session it served it in:
callers cannot choose session ids or invent impressions to report clicks on.

Each id carries the time it was issued (inside the signed part), so both expire: a session
after ``session_ttl_s`` (the caller then gets a new one), an impression's clicks after
``impression_ttl_s``. A click on a fresh impression counts even when its session has just
expired: the impression was issued while the session was valid."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

MAC_CHARS = 32  # 128 bits of the MAC, hex
ISSUED_CHARS = 8  # unix seconds, hex
NONCE_CHARS = ISSUED_CHARS + 20  # + 80 random bits
CLOCK_SKEW_S = 60.0  # replicas' clocks may differ by this much


@dataclass(frozen=True)
class SessionConfig:
    session_ttl_s: float = 12 * 3600.0
    impression_ttl_s: float = 3600.0


class Sessions:
    def __init__(
        self,
        key: bytes,
        config: SessionConfig | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = key
        self._config = config or SessionConfig()
        self._clock = clock

    def _mac(self, *parts: str) -> str:
        message = "|".join(parts).encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:MAC_CHARS]

    def _issue(self, kind: str, *bound: str) -> str:
        nonce = f"{int(self._clock()):0{ISSUED_CHARS}x}{secrets.token_hex(10)}"
        return f"{nonce}.{self._mac(kind, nonce, *bound)}"

    def _valid(self, kind: str, token: str, ttl_s: float, *bound: str) -> bool:
        nonce, _, mac = token.partition(".")
        if len(nonce) != NONCE_CHARS or not hmac.compare_digest(
            mac, self._mac(kind, nonce, *bound)
        ):
            return False
        age = self._clock() - int(nonce[:ISSUED_CHARS], 16)  # signed by us: hex
        return -CLOCK_SKEW_S <= age <= ttl_s

    def session(self, offered: str | None) -> str:
        """The caller's session if this API issued it and it has not expired, else a new one."""
        if offered is not None and self._valid("session", offered, self._config.session_ttl_s):
            return offered
        return self._issue("session")

    def impression(self, session_id: str) -> str:
        return self._issue("impression", session_id)

    def served(self, impression_id: str, session_id: str | None) -> bool:
        """Whether this API served ``impression_id`` in ``session_id``, recently enough for a
        click on it to count."""
        if session_id is None:
            return False
        never = float("inf")  # the session's age is bounded by its impression's
        return self._valid("session", session_id, never) and self._valid(
            "impression", impression_id, self._config.impression_ttl_s, session_id
        )
