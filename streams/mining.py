"""The click-mining Faust app: impressions and interactions in, training pairs out.

Both input topics are keyed by impression id and have the same partition count, so a worker
owns an impression and its clicks. Join state lives in a windowed (tumbling, one join window
wide), changelog-backed table keyed by impression id: a restarted worker recovers it from the
changelog, so a redelivered click finds its impression and its earlier clicks and makes no
second pair. An impression's state stays in the window of the first event seen for it, and
events look there and in the neighbouring windows (a click up to one window after its
impression falls in the same or the next window). Windows expire after three widths.

Pairs go to Postgres (idempotent by pair id) and to ``training-pairs.v1`` before the click is
recorded in the join table and before the event is acknowledged: a crash in between redelivers
the click, which makes the same pairs again (same ids, same negatives), so a pair may repeat on
the topic, identical, and is never lost. Postgres or Kafka failing holds the event back until
they answer (an agent must not raise: Faust would ack the event). Undecodable or invalid
events, and an event the miner itself fails on, are dead-lettered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from functools import partial
from typing import Any

import faust

from config.settings import Settings
from processors.clicks import ClickMiner, Step
from processors.decoding import decode_json_event
from processors.errors import ProcessingError
from schemas.dead_letter import DeadLetter, ErrorKind
from schemas.interactions import SearchImpression, parse_interaction_event
from stores.dead_letters import OriginalStore
from stores.faults import transient
from stores.pairs import PairRepository
from streams.app import faust_app
from streams.faults import Backoff, until_done
from streams.metrics import MinerMetrics

log = logging.getLogger(__name__)


def create_miner_app(
    settings: Settings,
    miner: ClickMiner,
    pairs: PairRepository,
    metrics: MinerMetrics,
    originals: OriginalStore,
) -> faust.App:
    # json: the join table's keys and values; the topics below are raw
    app = faust_app(settings, settings.miner_app_id, serializer="json")
    window_s = settings.click_window_s
    joins = app.Table(
        "click-joins",
        default=None,
        partitions=settings.topic_partitions,
        on_window_close=lambda key, value: metrics.window_closed(value),
    ).tumbling(timedelta(seconds=window_s), expires=timedelta(seconds=3 * window_s))
    source = app.topic(
        settings.impressions_topic,
        settings.interactions_topic,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=None,
    )
    raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
    pairs_topic = app.topic(settings.training_pairs_topic, key_type=bytes, value_type=bytes, **raw)
    dead_letters = app.topic(settings.dead_letter_topic, key_type=bytes, value_type=bytes, **raw)
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stylestream-pairs")
    table = joins.table
    window = table.window
    assert window is not None

    def find(key: str, ts: float) -> tuple[Any, Any]:
        """(window range holding this impression's state, the state); a new one if none."""
        for t in (ts, ts - window_s, ts + window_s):
            rng = window.current(t)
            state = table.get((key, rng))
            if state is not None:
                return rng, state
        return window.current(ts), None

    backoff = Backoff(settings.retry_first_s, settings.retry_cap_s)

    async def send(topic: Any, key: bytes | None, value: bytes) -> None:
        async def once() -> None:
            await (await topic.send(key=key, value=value))  # delivered, not just queued

        await until_done(f"sending to {topic.get_topic_name()}", once, backoff)

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
            keep = partial(
                asyncio.get_running_loop().run_in_executor, executor, originals.put, msg.value
            )
            await until_done("keeping a dead letter's original", keep, backoff)
        await send(dead_letters, letter.origin.encode(), letter.model_dump_json().encode())
        metrics.dead_lettered.labels(kind.value).inc()

    async def mine(stream: Any) -> AsyncIterator[int]:
        loop = asyncio.get_running_loop()
        async for event in stream.events():
            msg = event.message
            try:
                decoded = decode_json_event(msg.value or b"", parse_interaction_event)
            except ProcessingError as bad:
                await dead_letter(msg, bad.kind, str(bad))
                yield 0
                continue
            try:
                key = decoded.impression_id
                rng, state = find(key, decoded.event_time.timestamp())
                step: Step
                if isinstance(decoded, SearchImpression):
                    step = miner.on_impression(state, decoded)
                else:
                    step = miner.on_click(state, decoded)
            except Exception as exc:  # a bug met on this event: it alone is kept aside
                log.exception("mining failed on one event: dead-lettered")
                await dead_letter(msg, ErrorKind.PROCESSING_ERROR, f"{type(exc).__name__}: {exc}")
                yield 0
                continue
            if step.pairs:
                write = partial(loop.run_in_executor, executor, pairs.write, step.pairs)
                try:
                    written = await until_done("writing pairs", write, backoff, retry_if=transient)
                except Exception as exc:  # a healthy Postgres refuses these pairs: this event's
                    log.exception("training pairs refused: the click is dead-lettered")
                    await dead_letter(msg, ErrorKind.STORE_ERROR, f"{type(exc).__name__}: {exc}")
                    yield 0
                    continue
                metrics.pairs_written.inc(len(written))
                for p in step.pairs:
                    await send(pairs_topic, p.impression_id.encode(), p.model_dump_json().encode())
            table[(key, rng)] = step.state  # the click counts as consumed only now
            for outcome in step.outcomes:
                metrics.outcomes.labels(outcome.value).inc()
            yield len(step.pairs)

    app.agent(source, name="click-miner")(mine)
    return app
