"""Session and impression ids issued by the API and signed with its key (HMAC-SHA256), so a
click can be reported only on an impression this API served, in the session it served it in:
callers cannot choose session ids (the click training's held-out split hashes them) or invent
impressions to report clicks on."""

from __future__ import annotations

import hashlib
import hmac
import secrets

MAC_CHARS = 32  # 128 bits of the MAC, hex


class Sessions:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, *parts: str) -> str:
        message = "|".join(parts).encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:MAC_CHARS]

    def _signed(self, kind: str, token: str, *bound: str) -> bool:
        nonce, _, mac = token.partition(".")
        return bool(nonce) and hmac.compare_digest(mac, self._mac(kind, nonce, *bound))

    def session(self, offered: str | None) -> str:
        """The caller's session if this API issued it, else a new one."""
        if offered is not None and self._signed("session", offered):
            return offered
        nonce = secrets.token_hex(12)
        return f"{nonce}.{self._mac('session', nonce)}"

    def impression(self, session_id: str) -> str:
        nonce = secrets.token_hex(12)
        return f"{nonce}.{self._mac('impression', nonce, session_id)}"

    def served(self, impression_id: str, session_id: str | None) -> bool:
        """Whether this API served ``impression_id`` in ``session_id``."""
        return (
            session_id is not None
            and self._signed("session", session_id)
            and self._signed("impression", impression_id, session_id)
        )
