"""The Faust app factory: topics and the product agent, wired to a BatchHandler.

Records are taken as raw bytes so that anything undecodable still reaches the dead-letter
topic unchanged. Blocking work (ONNX, pymilvus, psycopg2) runs in a one-thread executor so
the event loop keeps heartbeating and committing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import faust

from config.kafka import KafkaConfig
from config.settings import Settings
from processors.products import RawEvent
from schemas.dead_letter import DeadLetter
from streams.handler import BatchHandler
from streams.outfits import OutfitHandler

log = logging.getLogger(__name__)


def faust_app(settings: Settings, app_id: str, serializer: str = "raw") -> faust.App:
    """A Faust app (one consumer group) with the project's broker and delivery settings;
    ``serializer`` is the default for its topics and tables."""
    datadir = settings.data_dir / "faust" / app_id
    datadir.parent.mkdir(parents=True, exist_ok=True)  # Faust makes only the last level
    return faust.App(
        app_id,
        broker=settings.kafka_url,
        store="memory://",
        datadir=str(datadir),  # not the working directory
        key_serializer=serializer,
        value_serializer=serializer,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.kafka_session_timeout_s,
        broker_heartbeat_interval=settings.kafka_heartbeat_interval_s,
        broker_commit_interval=1.0,
        web_enabled=False,
        web_port=settings.worker_web_port,
        producer_acks=-1,
        broker_credentials=faust_credentials(KafkaConfig.of(settings)),
    )


def faust_credentials(kafka: KafkaConfig) -> faust.SASLCredentials | faust.SSLCredentials | None:
    """The settings' TLS and SASL for Faust (aiokafka), as the kafka-python clients get them
    (config/kafka.py)."""
    if not kafka.tls and not kafka.sasl:
        return None
    context = ssl.create_default_context(cafile=kafka.ssl_cafile) if kafka.tls else None
    if not kafka.sasl:
        return faust.SSLCredentials(context)
    return faust.SASLCredentials(
        username=kafka.username,
        password=kafka.password,
        mechanism=kafka.sasl_mechanism,
        ssl_context=context,
    )


def _raws(events: Any) -> list[RawEvent]:
    """Faust's events as the handlers take them: bytes and where they came from."""
    return [
        RawEvent(
            value=e.message.value or b"",
            topic=e.message.topic,
            partition=e.message.partition,
            offset=e.message.offset,
            key=e.message.key,
        )
        for e in events
    ]


def create_app(
    settings: Settings, handler: BatchHandler, outfits: OutfitHandler | None = None
) -> faust.App:
    """The worker's app: the product agent, and the outfit agent when ``outfits`` is given."""
    app = faust_app(settings, settings.app_id)
    products = app.topic(settings.products_topic, key_type=bytes, value_type=bytes, partitions=None)
    dead_letters = app.topic(settings.dead_letter_topic, key_type=bytes, value_type=bytes)
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stylestream-batch")
    dependencies = handler.dependencies

    async def send_dead_letters(letters: list[DeadLetter]) -> None:
        """Delivered before the batch is acked (a crash here redelivers the batch). Kafka
        refusing is Kafka's fault, not the events': retried until it takes them, since Faust
        would ack the batch if the agent raised (faust-streaming #527)."""
        waiting = [(dl.origin.encode(), dl.model_dump_json().encode())
                   for dl in letters]  # fmt: skip
        attempt = 0

        async def send(key: bytes, value: bytes) -> Any:
            """Delivered, or the error (raised at once, as for no metadata, or later)."""
            try:
                return await (await dead_letters.send(key=key, value=value))
            except Exception as exc:  # Kafka's, never the letter's: it always fits
                return exc

        while waiting:
            outcomes = [await send(k, v) for k, v in waiting]
            errors = [o for o in outcomes if isinstance(o, BaseException)]
            waiting = [
                w for w, o in zip(waiting, outcomes, strict=True) if isinstance(o, BaseException)
            ]
            if waiting:
                attempt += 1
                delay = dependencies.backoff.delay(attempt)
                log.warning("%d dead letters not taken by Kafka (%s); again in %.1fs",
                            len(waiting), errors[0], delay)  # fmt: skip
                dependencies.heartbeat.beat()
                await asyncio.sleep(delay)

    handled_up_to: dict[int, int] = {}  # partition -> the next offset to handle

    async def product_agent(stream: Any) -> AsyncIterator[int]:
        loop = asyncio.get_running_loop()
        async for events in stream.take_events(settings.batch_max, within=settings.batch_within_s):
            raws = _raws(events)
            handled = await loop.run_in_executor(executor, handler.handle, raws)
            if handled.dead_letters:
                await send_dead_letters(handled.dead_letters)
                log.info("dead-lettered %d of %d events", len(handled.dead_letters), len(raws))
            for raw in raws:
                handled_up_to[raw.partition] = max(
                    handled_up_to.get(raw.partition, 0), raw.offset + 1
                )
            yield len(raws)

    app.agent(products, name="products")(product_agent)

    if outfits is not None:
        outfit_topic = app.topic(
            settings.outfits_topic, key_type=bytes, value_type=bytes, partitions=None
        )

        async def outfit_agent(stream: Any) -> AsyncIterator[int]:
            loop = asyncio.get_running_loop()
            batches = stream.take_events(settings.batch_max, within=settings.batch_within_s)
            async for events in batches:
                raws = _raws(events)
                handled = await loop.run_in_executor(executor, outfits.handle, raws)
                if handled.dead_letters:
                    await send_dead_letters(handled.dead_letters)
                    log.info("dead-lettered %d of %d outfit events",
                             len(handled.dead_letters), len(raws))  # fmt: skip
                yield len(raws)

        app.agent(outfit_topic, name="outfits")(outfit_agent)

    async def beat_when_idle() -> None:
        """The event loop is alive: with no batch in hand, that is the batch loop's health."""
        if not dependencies.heartbeat.busy:
            dependencies.heartbeat.beat()

    app.timer(interval=5.0)(beat_when_idle)

    async def export_lag() -> None:
        """Per assigned partition: the log's end minus the next offset this worker handles."""
        gauge = handler.metrics.consumer_lag
        assigned = {
            tp.partition: tp
            for tp in app.consumer.assignment()
            if tp.topic == products.get_topic_name()
        }
        for partition in list(handled_up_to):
            if partition not in assigned:
                handled_up_to.pop(partition)
                with contextlib.suppress(KeyError):
                    gauge.remove(str(partition))
        for partition, tp in assigned.items():
            end = app.consumer.highwater(tp)
            # before its first batch: from where the consumer reads (a worker stuck before
            # it handled anything still shows its backlog)
            start = handled_up_to.get(partition)
            if start is None:
                try:
                    start = await app.consumer.position(tp)
                except Exception as exc:  # revoked meanwhile: a timer that raises is gone
                    log.debug("no position for %s: %s", tp, exc)
                    continue
            if end is not None and start is not None:
                gauge.labels(partition=str(partition)).set(max(0, end - start))

    app.timer(interval=15.0)(export_lag)

    if settings.milvus_flush_interval_s > 0:

        async def flush_index() -> None:
            await asyncio.get_running_loop().run_in_executor(executor, handler.flush)

        app.timer(interval=settings.milvus_flush_interval_s)(flush_index)

    return app
