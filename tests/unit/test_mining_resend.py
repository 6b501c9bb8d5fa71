"""What the miner sends after a step: new pairs as made, and for a redelivered event the pairs
as stored (never a recomputed copy), so a repeat on the topic is identical."""

from __future__ import annotations

from processors.clicks import ClickMiner, ListSampler, MiningConfig, Outcome
from stores.joins import MemoryJoins
from streams.mining import StepFailed, _store_fault, resend, stepper
from tests.contract.test_joins import click, impression

MINER = ClickMiner(ListSampler([f"p{i}" for i in range(40)]), MiningConfig(60, 2))


def test_new_pairs_go_as_made_and_redeliveries_send_the_stored_ones() -> None:
    joins = MemoryJoins()
    shown = impression("i")
    step, new = joins.apply("i", stepper(MINER, shown))
    assert resend(joins, shown, step, new) == []
    first = click("i", "p3")
    step, new = joins.apply("i", stepper(MINER, first))
    made = resend(joins, first, step, new)
    assert [p.pair_id for p in made] == ["i:p3"] and made == step.pairs
    # the click redelivered after the commit (the crash came before the send)
    step, new = joins.apply("i", stepper(MINER, first))
    assert step.outcomes == [Outcome.DUPLICATE] and new == []
    assert resend(joins, first, step, new) == made
    # the impression redelivered: every pair made from it
    step, new = joins.apply("i", stepper(MINER, shown))
    assert step.outcomes == [Outcome.DUPLICATE_IMPRESSION]
    assert resend(joins, shown, step, new) == made


def test_a_pair_made_again_is_sent_as_stored() -> None:
    """A state expired and the events replayed with a changed catalogue: the step makes the
    pair again with other random negatives; what was stored (and sent) goes again."""
    joins = MemoryJoins()
    joins.apply("j", stepper(MINER, impression("j")))
    stored = joins.apply("j", stepper(MINER, click("j", "p2")))[0].pairs
    other = ClickMiner(ListSampler([f"q{i}" for i in range(40)]), MiningConfig(60, 2))
    replayed = other.on_click(other.on_impression(None, impression("j")).state, click("j", "p2"))
    assert replayed.pairs[0].random_negatives != stored[0].random_negatives
    assert resend(joins, click("j", "p2"), replayed, []) == stored


def test_the_miners_own_failure_is_never_waited_for() -> None:
    try:
        try:
            raise ConnectionError("a bug that happens to raise this")
        except ConnectionError as inner:
            raise StepFailed("ConnectionError: ...") from inner
    except StepFailed as failed:
        assert not _store_fault(failed)
    assert _store_fault(ConnectionError("postgres went away"))
