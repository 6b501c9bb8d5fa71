"""Which store errors are the dependency's (waited out) and which the data's (dead-lettered):
Postgres's errors by their SQLSTATE class."""

from __future__ import annotations

import pytest
from sqlalchemy import exc as sa

from stores.faults import transient


class PgError(Exception):
    def __init__(self, pgcode: str | None) -> None:
        super().__init__(f"pgcode {pgcode}")
        self.pgcode = pgcode


def operational(pgcode: str | None) -> sa.OperationalError:
    return sa.OperationalError("INSERT ...", {}, PgError(pgcode))


@pytest.mark.parametrize(
    "pgcode",
    [
        None,
        "08006",
        "40P01",
        "40001",
        "42P01",
        "42501",
        "53100",
        "53300",
        "55P03",
        "57P01",
        "57014",
        "58030",
    ],
)
def test_the_servers_state_is_transient(pgcode: str | None) -> None:
    assert transient(operational(pgcode))


@pytest.mark.parametrize("pgcode", ["54000", "54001", "22021", "XX000"])
def test_a_statement_the_server_cannot_take_is_not(pgcode: str) -> None:
    assert not transient(operational(pgcode))  # e.g. an index row over the btree limit


def test_a_write_to_a_standby_after_a_failover_is_transient() -> None:
    assert transient(sa.InternalError("INSERT ...", {}, PgError("25006")))
    assert not transient(sa.InternalError("INSERT ...", {}, PgError(None)))
    assert not transient(sa.DataError("INSERT ...", {}, PgError("22001")))  # value too long


def test_the_cause_chain_is_followed() -> None:
    try:
        try:
            raise operational("08001")
        except sa.OperationalError as inner:
            raise RuntimeError("write failed") from inner
    except RuntimeError as outer:
        assert transient(outer)
    assert not transient(ValueError("bad"))
