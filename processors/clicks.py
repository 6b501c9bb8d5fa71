"""Clicks joined with the impressions they came from, into training pairs. Pure logic: the
state per impression id is a plain JSON dict (stored by stores/joins.py in Postgres),
every call returns the new state, the pairs and what happened, and replaying an event never
yields a second pair.

Rules:
- a click pairs with its impression when it comes at most ``window_s`` after it; later is
  ``late`` (counted, no pair);
- a click that arrives before its impression waits in the state (``pending``) and pairs when
  the impression arrives, if within the window;
- a second click on the same product of the same impression is a ``duplicate``;
- a click on a product the impression did not show is ``not_shown`` (counted, no pair);
- hard negatives: the results shown above the click and never clicked in this impression;
- random negatives: sampled by the injected ``NegativeSampler`` with a seed derived from the
  pair id, so a replay samples the same products.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from schemas.interactions import Interaction, SearchImpression, TrainingPair


class Outcome(StrEnum):
    PAIRED = "paired"
    PENDING = "pending"
    DUPLICATE = "duplicate"
    LATE = "late"
    NOT_SHOWN = "not_shown"
    IMPRESSION = "impression"
    DUPLICATE_IMPRESSION = "duplicate_impression"


class NegativeSampler(Protocol):
    def sample(self, seed: int, n: int, exclude: set[str]) -> list[str]: ...


@dataclass(frozen=True)
class MiningConfig:
    window_s: float = 1800.0
    random_negatives: int = 4


@dataclass
class Step:
    state: dict[str, Any]
    pairs: list[TrainingPair] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)


def pair_id(impression_id: str, product_id: str) -> str:
    return f"{impression_id}:{product_id}"


def _seed(pid: str) -> int:
    return int.from_bytes(hashlib.sha256(pid.encode()).digest()[:8], "big")


class ClickMiner:
    def __init__(self, sampler: NegativeSampler, config: MiningConfig = MiningConfig()) -> None:
        self.sampler = sampler
        self.config = config

    @staticmethod
    def empty() -> dict[str, Any]:
        return {"impression": None, "clicked": [], "pending": []}

    def on_impression(self, state: dict[str, Any] | None, impression: SearchImpression) -> Step:
        state = dict(state or self.empty())
        if state["impression"] is not None:
            return Step(state, outcomes=[Outcome.DUPLICATE_IMPRESSION])
        state["impression"] = impression.model_dump(mode="json")
        step = Step(state, outcomes=[Outcome.IMPRESSION])
        pending = [Interaction.model_validate(c) for c in state["pending"]]
        state["pending"] = []
        for click in sorted(pending, key=lambda c: c.event_time):
            inner = self._pair(state, impression, click)
            step.pairs += inner.pairs
            step.outcomes += inner.outcomes
        return step

    def on_click(self, state: dict[str, Any] | None, click: Interaction) -> Step:
        state = dict(state or self.empty())
        if state["impression"] is None:
            known = {pair_id(c["impression_id"], c["product_id"]) for c in state["pending"]}
            if pair_id(click.impression_id, click.product_id) in known:
                return Step(state, outcomes=[Outcome.DUPLICATE])
            state["pending"] = [*state["pending"], click.model_dump(mode="json")]
            return Step(state, outcomes=[Outcome.PENDING])
        impression = SearchImpression.model_validate(state["impression"])
        return self._pair(state, impression, click)

    def _pair(
        self, state: dict[str, Any], impression: SearchImpression, click: Interaction
    ) -> Step:
        if click.product_id in state["clicked"]:
            return Step(state, outcomes=[Outcome.DUPLICATE])
        delay = (click.event_time - impression.event_time).total_seconds()
        if delay > self.config.window_s:
            return Step(state, outcomes=[Outcome.LATE])
        position = next(
            (s.position for s in impression.results if s.product_id == click.product_id), None
        )
        if position is None:
            return Step(state, outcomes=[Outcome.NOT_SHOWN])
        clicked = set(state["clicked"])
        skipped = [
            s
            for s in sorted(impression.results, key=lambda s: s.position)
            if s.position < position and s.product_id not in clicked
        ]
        pid = pair_id(impression.impression_id, click.product_id)
        shown = {s.product_id for s in impression.results}
        randoms = self.sampler.sample(_seed(pid), self.config.random_negatives, shown)
        state["clicked"] = [*state["clicked"], click.product_id]
        pair = TrainingPair(
            pair_id=pid,
            impression_id=impression.impression_id,
            session_id=impression.session_id,
            user_id=impression.user_id,
            query=impression.query,
            positive=click.product_id,
            position=position,
            hard_negatives=[s.product_id for s in skipped],
            hard_negative_positions=[s.position for s in skipped],
            random_negatives=randoms,
            interaction=click.type,
            ranker_model_version=impression.model_version,
            shown_at=impression.event_time,
            clicked_at=click.event_time,
        )
        return Step(state, [pair], [Outcome.PAIRED])


class ListSampler:
    """Random negatives from a fixed list of product ids (the catalogue, loaded by the caller)."""

    def __init__(self, product_ids: Sequence[str]) -> None:
        self.product_ids = sorted(set(product_ids))

    def sample(self, seed: int, n: int, exclude: set[str]) -> list[str]:
        import random

        pool = [p for p in self.product_ids if p not in exclude]
        return random.Random(seed).sample(pool, min(n, len(pool)))
