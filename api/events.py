"""The API's Kafka side, apart from its routes: one producer shared by the impression thread
and interaction requests, and the fire-and-forget impression emitter.

- Impressions are fire-and-forget: a search puts its impression on a bounded in-process
  queue and answers; a background thread sends to Kafka. When Kafka is slow or down the
  queue fills and impressions are dropped and counted
  (``stylestream_api_impressions_total{outcome="dropped"}``): a search never waits on Kafka.
"""

from __future__ import annotations

import logging
import queue
import threading

from kafka import KafkaProducer
from kafka.errors import KafkaError
from prometheus_client import Counter

from config.kafka import KafkaConfig, kafka_producer
from schemas.interactions import SearchImpression

log = logging.getLogger(__name__)


class KafkaSender:
    """One kafka-python producer shared by the impression thread and interaction requests
    (it is thread-safe); created lazily so the API starts while Kafka is down."""

    def __init__(self, kafka: KafkaConfig) -> None:
        self.kafka = kafka
        self._producer: KafkaProducer | None = None
        self._lock = threading.Lock()

    def producer(self) -> KafkaProducer:
        with self._lock:
            if self._producer is None:
                self._producer = kafka_producer(
                    self.kafka,
                    # a fixed protocol version skips the start-up probe, which blocks for
                    # 30 s without a broker; max_block_ms then bounds every send
                    api_version=(2, 8),
                    max_block_ms=5000,
                    request_timeout_ms=10000,
                )
            return self._producer

    def send(self, topic: str, key: str, value: bytes, timeout_s: float | None = None) -> None:
        future = self.producer().send(topic, key=key.encode(), value=value)
        if timeout_s is not None:
            future.get(timeout=timeout_s)

    def close(self) -> None:
        with self._lock:
            if self._producer is not None:
                self._producer.close(timeout=5)
                self._producer = None


class ImpressionEmitter:
    def __init__(
        self, sender: KafkaSender, topic: str, counter: Counter, maxsize: int = 10_000
    ) -> None:
        self.sender = sender
        self.topic = topic
        self.counter = counter  # labelled by outcome
        self._queue: queue.Queue[SearchImpression | None] = queue.Queue(maxsize)
        self._thread = threading.Thread(target=self._run, name="impressions", daemon=True)
        self._thread.start()

    def emit(self, impression: SearchImpression) -> None:
        try:
            self._queue.put_nowait(impression)
            self.counter.labels("queued").inc()
        except queue.Full:
            self.counter.labels("dropped").inc()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                self.sender.send(self.topic, item.impression_id, item.model_dump_json().encode())
                self.counter.labels("sent").inc()
            except KafkaError as exc:
                self.counter.labels("failed").inc()
                log.warning("impression %s not sent: %s", item.impression_id, exc)

    def close(self, timeout_s: float = 10.0) -> None:
        """Send what is queued (within ``timeout_s``), then stop."""
        self._queue.put(None)
        self._thread.join(timeout_s)
