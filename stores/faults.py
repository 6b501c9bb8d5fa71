"""Which store errors are the dependency's fault, to be retried until it is back, rather than
the data's (the event then goes to the dead-letter topic). What this cannot tell is settled by
asking the stores themselves (their ``ping``) when the error happens."""

from __future__ import annotations

import grpc  # type: ignore[import-untyped]
from pymilvus.exceptions import (
    ConnectError,
    ConnectionNotExistException,
    MilvusException,
    MilvusUnavailableException,
)
from sqlalchemy import exc as sa

# Lost connections, timeouts, lock timeouts, deadlocks, a server going away or refusing
# connections: never the event's fault.
_TRANSIENT = (
    ConnectionError,
    TimeoutError,
    sa.OperationalError,
    sa.InterfaceError,
    sa.DisconnectionError,
    sa.TimeoutError,  # the pool's
    ConnectError,
    ConnectionNotExistException,
    MilvusUnavailableException,
    grpc.RpcError,
)
# ... and a collection a restarted server has released (the probe loads it again)
_MILVUS_WORDS = (
    "unavailable", "deadline", "connect", "timeout", "too many", "rate limit", "released",
    "not loaded",
)  # fmt: skip


def transient(error: BaseException) -> bool:
    """Whether ``error`` (or an error it was raised from) says a store is unreachable or busy."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen and len(seen) < 8:
        seen.add(id(current))
        if isinstance(current, _TRANSIENT):
            return True
        if isinstance(current, MilvusException):
            text = f"{current.code} {current.message}".lower()
            if any(word in text for word in _MILVUS_WORDS):
                return True
        current = current.__cause__ or current.__context__
    return False
