"""The click-mining Faust app: impressions and interactions in, training pairs out.

Both input topics are keyed by impression id and have the same partition count, so a worker
owns an impression and its clicks. Join state lives in a windowed (tumbling, one join window
wide), changelog-backed table keyed by impression id: a restarted worker recovers it from the
changelog, so a redelivered click finds its impression and its earlier clicks and makes no
second pair. An impression's state stays in the window of the first event seen for it, and
events look there and in the neighbouring windows (a click up to one window after its
impression falls in the same or the next window). Windows expire after three widths.

Pairs go to Postgres (idempotent by pair id) and to ``training-pairs.v1`` before the event
is acknowledged; a crash in between may repeat a pair on the topic, identical (same id, same
negatives), never lose one. Undecodable or invalid events are dead-lettered.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import faust
from pydantic import ValidationError

from processors.clicks import ClickMiner, Step
from schemas.dead_letter import DeadLetter, ErrorKind
from schemas.events import UnknownSchemaVersion
from schemas.interactions import Interaction, SearchImpression, parse_interaction_event
from stores.pairs import PairRepository
from streams.metrics import MinerMetrics
from stylestream.settings import Settings

log = logging.getLogger(__name__)


def _decode(value: bytes) -> SearchImpression | Interaction:
    try:
        payload = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _Bad(ErrorKind.NOT_JSON, f"value is not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise _Bad(ErrorKind.SCHEMA_VIOLATION, "event must be a JSON object")
    try:
        return parse_interaction_event(payload)
    except UnknownSchemaVersion as exc:
        raise _Bad(ErrorKind.UNKNOWN_SCHEMA_VERSION, str(exc)) from exc
    except ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<event>'}: {e['msg']}"
            for e in exc.errors()[:10]
        )
        raise _Bad(ErrorKind.SCHEMA_VIOLATION, f"schema violation: {details}") from exc


class _Bad(Exception):
    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def create_miner_app(
    settings: Settings, miner: ClickMiner, pairs: PairRepository, metrics: MinerMetrics
) -> faust.App:
    app = faust.App(
        settings.miner_app_id,
        broker=settings.kafka_url,
        store="memory://",
        key_serializer="json",  # the join table's keys and values; topics below are raw
        value_serializer="json",
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.kafka_session_timeout_s,
        broker_heartbeat_interval=settings.kafka_heartbeat_interval_s,
        broker_commit_interval=1.0,
        web_enabled=False,
        producer_acks=-1,
    )
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

    async def mine(stream: Any) -> AsyncIterator[int]:
        loop = asyncio.get_running_loop()
        async for event in stream.events():
            msg = event.message
            try:
                decoded = _decode(msg.value or b"")
            except _Bad as bad:
                letter = DeadLetter.wrap(
                    msg.value or b"",
                    topic=msg.topic,
                    partition=msg.partition,
                    offset=msg.offset,
                    key=msg.key,
                    kind=bad.kind,
                    message=str(bad),
                )
                await dead_letters.send(key=msg.key, value=letter.model_dump_json().encode())
                metrics.dead_lettered.labels(bad.kind.value).inc()
                yield 0
                continue
            key = decoded.impression_id
            rng, state = find(key, decoded.event_time.timestamp())
            step: Step
            if isinstance(decoded, SearchImpression):
                step = miner.on_impression(state, decoded)
            else:
                step = miner.on_click(state, decoded)
            table[(key, rng)] = step.state
            for outcome in step.outcomes:
                metrics.outcomes.labels(outcome.value).inc()
            if step.pairs:
                written = await loop.run_in_executor(executor, pairs.write, step.pairs)
                metrics.pairs_written.inc(len(written))
                sends = [
                    await pairs_topic.send(
                        key=p.impression_id.encode(), value=p.model_dump_json().encode()
                    )
                    for p in step.pairs
                ]
                await asyncio.gather(*sends)  # delivered before the event is acknowledged
            yield len(step.pairs)

    app.agent(source, name="click-miner")(mine)
    return app
