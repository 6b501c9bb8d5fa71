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


# Postgres's error classes (SQLSTATE) that are the server's state, not the statement's:
# connection, transaction rollback (deadlock, serialization), insufficient resources,
# operator intervention (shutdown, statement cancelled), system errors; a lock timeout, and a
# read-only transaction (a standby still taking the writes after a failover). Class 42 (an
# undefined table or column, a missing privilege) is the deployment's, never an event's (all
# values are bound parameters): a worker started before its migration waits for it.
_PG_TRANSIENT_CLASSES = ("08", "40", "42", "53", "57", "58")
_PG_TRANSIENT_CODES = ("55P03", "25006")


def _pg_transient(error: sa.DBAPIError) -> bool:
    """An OperationalError with no SQLSTATE never reached the server (connect, network); with
    one, its class says (class 54, "program limit exceeded", is a row too large: the data's)."""
    code = getattr(error.orig, "pgcode", None)
    if not code:
        return isinstance(error, sa.OperationalError)
    return str(code).startswith(_PG_TRANSIENT_CLASSES) or code in _PG_TRANSIENT_CODES


def transient(error: BaseException) -> bool:
    """Whether ``error`` (or an error it was raised from) says a store is unreachable or busy."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen and len(seen) < 8:
        seen.add(id(current))
        if isinstance(current, _TRANSIENT):
            return True
        if isinstance(current, sa.DBAPIError) and _pg_transient(current):
            return True
        if isinstance(current, MilvusException):
            text = f"{current.code} {current.message}".lower()
            if any(word in text for word in _MILVUS_WORDS):
                return True
        current = current.__cause__ or current.__context__
    return False
