"""The click-mining Faust app: impressions and interactions in, training pairs out.

Both input topics are keyed by impression id, so a worker owns an impression and its clicks.
The join state per impression lives in Postgres (stores/joins.py), stepped and stored in the
transaction that stores the pairs the step made: a click is never recorded as consumed without
its pair, whatever is killed when. (It was a Faust changelog table, which could lag the
committed offsets after a SIGKILL: see NOTES.md.) A state expires three join windows after
the miner last wrote it; the clicks it still held waiting are counted as orphaned.

Pairs go to ``training-pairs.v1`` after that transaction and before the event is acknowledged.
A crash in between redelivers the event, which the stored state then calls a duplicate: the
pairs stored for it are sent again, identical (a pair may repeat on the topic, never be lost).
Postgres or Kafka failing holds the event back until they answer (an agent must not raise:
Faust would ack the event). Undecodable or invalid events, and an event the miner itself fails
on, are dead-lettered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import faust

from config.settings import Settings
from processors.clicks import ClickMiner, Outcome, Step
from processors.decoding import decode_json_event
from processors.errors import ProcessingError
from schemas.dead_letter import DeadLetter, ErrorKind
from schemas.interactions import (
    Interaction,
    SearchImpression,
    TrainingPair,
    parse_interaction_event,
)
from stores.dead_letters import OriginalStore
from stores.faults import transient
from stores.joins import JoinStore, State
from streams.app import faust_app
from streams.faults import Backoff, Dependencies, until_done
from streams.metrics import MinerMetrics

log = logging.getLogger(__name__)


class StepFailed(Exception):
    """The miner's own code failed on an event (not the store): the event is kept aside."""


def stepper(miner: ClickMiner, event: SearchImpression | Interaction) -> Any:
    def step(state: State | None) -> Step:
        try:
            if isinstance(event, SearchImpression):
                return miner.on_impression(state, event)
            return miner.on_click(state, event)
        except Exception as exc:
            raise StepFailed(f"{type(exc).__name__}: {exc}") from exc

    return step


def resend(joins: JoinStore, event: SearchImpression | Interaction, step: Step,
           new: list[str]) -> list[TrainingPair]:  # fmt: skip
    """The pairs to send for a step, as stored: the new ones as made; for a redelivered event
    (the crash may have come between the commit and the send) the stored ones, never a
    recomputed copy (its random negatives may differ)."""
    if step.pairs:
        if set(new) == {p.pair_id for p in step.pairs}:
            return step.pairs
        stored = {p.pair_id: p for p in joins.pairs(event.impression_id)}
        return [p if p.pair_id in new else stored.get(p.pair_id, p) for p in step.pairs]
    if step.outcomes == [Outcome.DUPLICATE_IMPRESSION]:
        return joins.pairs(event.impression_id)
    if step.outcomes == [Outcome.DUPLICATE] and isinstance(event, Interaction):
        return joins.pairs(event.impression_id, event.product_id)
    return []


def _store_fault(exc: Exception) -> bool:
    """Worth waiting for: the store's fault, never the miner's own (a bug raising, say, a
    ConnectionError inside the step is the event's, dead-lettered)."""
    return not isinstance(exc, StepFailed) and transient(exc)


def create_miner_app(
    settings: Settings,
    miner: ClickMiner,
    joins: JoinStore,
    metrics: MinerMetrics,
    originals: OriginalStore,
    dependencies: Dependencies,
) -> faust.App:
    app = faust_app(settings, settings.miner_app_id)
    source = app.topic(
        settings.impressions_topic,
        settings.interactions_topic,
        key_type=bytes,
        value_type=bytes,
        partitions=None,
    )
    pairs_topic = app.topic(settings.training_pairs_topic, key_type=bytes, value_type=bytes)
    dead_letters = app.topic(settings.dead_letter_topic, key_type=bytes, value_type=bytes)
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stylestream-joins")
    expiry = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stylestream-expiry")
    heartbeat = dependencies.heartbeat
    backoff = Backoff(settings.retry_first_s, settings.retry_cap_s)

    async def blocking(what: str, call: Any, retry_if: Any = lambda exc: True) -> Any:
        attempt = partial(asyncio.get_running_loop().run_in_executor, executor, call)
        return await until_done(what, attempt, backoff, dependencies, retry_if=retry_if)

    async def send(topic: Any, key: bytes | None, value: bytes) -> None:
        async def once() -> None:
            await (await topic.send(key=key, value=value))  # delivered, not just queued

        await until_done(f"sending to {topic.get_topic_name()}", once, backoff, dependencies)

    async def dead_letter(msg: Any, kind: ErrorKind, message: str) -> None:
        letter = DeadLetter.wrap(
            msg.value or b"",
            topic=msg.topic,
            partition=msg.partition,
            offset=msg.offset,
            key=msg.key,
            kind=kind,
            message=message,
            inline_bytes=settings.dead_letter_inline_bytes,
        )
        if letter.original_stored:  # too large for the letter: kept in Postgres first
            await blocking("keeping a dead letter's original", partial(originals.put, msg.value))
        await send(dead_letters, letter.origin.encode(), letter.model_dump_json().encode())
        metrics.dead_lettered.labels(kind.value).inc()

    async def handle(msg: Any) -> int:
        try:
            event = decode_json_event(msg.value or b"", parse_interaction_event)
        except ProcessingError as bad:
            await dead_letter(msg, bad.kind, str(bad))
            return 0
        apply = partial(joins.apply, event.impression_id, stepper(miner, event))
        try:
            step, new = await blocking("mining an event", apply, retry_if=_store_fault)
        except StepFailed as exc:  # a bug met on this event: it alone is kept aside
            log.exception("mining failed on one event: dead-lettered")
            await dead_letter(msg, ErrorKind.PROCESSING_ERROR, str(exc))
            return 0
        except Exception as exc:  # a healthy Postgres refuses this event's pairs or state
            log.exception("the join store refused one event: dead-lettered")
            await dead_letter(msg, ErrorKind.STORE_ERROR, f"{type(exc).__name__}: {exc}")
            return 0
        try:
            pairs = await blocking(
                "reading stored pairs", partial(resend, joins, event, step, new), transient
            )
        except Exception:  # stored, and the event is done: only a re-send is missed
            log.exception("stored pairs not re-sent for %s", event.impression_id)
            pairs = [p for p in step.pairs if p.pair_id in new]
        for p in pairs:
            await send(pairs_topic, p.impression_id.encode(), p.model_dump_json().encode())
        metrics.pairs_written.inc(len(new))
        for outcome in step.outcomes:
            metrics.outcomes.labels(outcome.value).inc()
        return len(new)

    async def mine(stream: Any) -> AsyncIterator[int]:
        async for event in stream.events():
            heartbeat.busy = True  # waits beat while it is held back
            made = await handle(event.message)
            heartbeat.busy = False
            heartbeat.beat()
            yield made

    app.agent(source, name="click-miner")(mine)

    async def beat_when_idle() -> None:
        """The event loop is alive: with no event in hand, that is the miner's health."""
        if not heartbeat.busy:
            heartbeat.beat()

    app.timer(interval=5.0)(beat_when_idle)

    async def expire_states() -> None:
        before = datetime.now(UTC) - timedelta(seconds=3 * settings.click_window_s)
        try:  # on its own thread: mining does not wait behind it
            orphaned = await asyncio.get_running_loop().run_in_executor(
                expiry, joins.expire, before
            )
        except Exception as exc:  # next time: old states only wait a little longer
            log.warning("join states not expired: %s", exc)
            return
        metrics.orphaned.inc(orphaned)

    app.timer(interval=min(300.0, settings.click_window_s / 4))(expire_states)
    return app
