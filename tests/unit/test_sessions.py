"""Server-issued, signed session and impression ids (no service)."""

from __future__ import annotations

from api.sessions import SessionConfig, Sessions


def test_sessions_are_issued_kept_and_never_taken_from_the_caller() -> None:
    sessions = Sessions(b"k" * 32)
    issued = sessions.session(None)
    assert sessions.session(issued) == issued
    for offered in ("sess-1", issued[:-1] + "x", "." + issued.split(".")[1], issued + "0"):
        assert sessions.session(offered) not in (offered, issued)
    assert Sessions(b"other key" * 4).session(issued) != issued  # another deployment's


def test_an_impression_is_bound_to_its_session_and_key() -> None:
    sessions = Sessions(b"k" * 32)
    mine, theirs = sessions.session(None), sessions.session(None)
    impression = sessions.impression(mine)
    assert sessions.served(impression, mine)
    assert not sessions.served(impression, theirs)
    assert not sessions.served(impression, None)
    tampered = impression[:-1] + ("1" if impression.endswith("0") else "0")
    assert not sessions.served(tampered, mine)
    assert not Sessions(b"x" * 32).served(impression, mine)
    forged_session = "a" * 28 + "." + "b" * 32
    assert not sessions.served(sessions.impression(forged_session), forged_session)
    assert len(impression) <= 128 and len(mine) <= 128  # within the Identifier contract


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_sessions_and_impressions_expire() -> None:
    clock = Clock()
    sessions = Sessions(b"k" * 32, SessionConfig(session_ttl_s=600, impression_ttl_s=60), clock)
    session = sessions.session(None)
    clock.now += 590
    impression = sessions.impression(session)
    assert sessions.session(session) == session
    clock.now += 30  # the session is now 620 s old: a caller gets a new one...
    assert sessions.session(session) != session
    assert sessions.served(impression, session)  # ...but a click on its fresh impression counts
    clock.now += 31
    assert not sessions.served(impression, session)  # 61 s after the impression


def test_ids_from_the_future_beyond_clock_skew_are_refused() -> None:
    clock = Clock()
    sessions = Sessions(b"k" * 32, clock=clock)
    clock.now += 3600
    ahead = sessions.session(None)
    clock.now -= 3600
    assert sessions.session(ahead) != ahead
