"""Search impressions out, interactions in.

- Impressions are fire-and-forget: a search puts its impression on a bounded in-process
  queue and answers; a background thread sends to Kafka. When Kafka is slow or down the
  queue fills and impressions are dropped and counted
  (``stylestream_api_impressions_total{outcome="dropped"}``): a search never waits on Kafka.
- Interactions (clicks, add-to-cart, purchases) are the labels: ``POST /v1/interactions``
  answers 202 only once Kafka has acknowledged the event, 503 if it cannot, so a frontend can
  retry and no click is silently lost.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import uuid
from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, Header
from kafka import KafkaProducer
from kafka.errors import KafkaError
from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field

from api.errors import ApiError
from api.state import State
from config.assembly import kafka_producer
from schemas.events import ProductId
from schemas.interactions import Identifier, Interaction, Query, SearchImpression, Shown
from stores.rows import encode_base64

log = logging.getLogger(__name__)
SessionHeader = Annotated[
    str | None,
    Header(alias="X-Session-Id", max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]*$"),
]
UserHeader = Annotated[
    str | None,
    Header(alias="X-User-Id", max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]*$"),
]


def new_id() -> str:
    return uuid.uuid4().hex


def image_query(rgb: np.ndarray, embedding: np.ndarray, filters: dict[str, object]) -> Query:
    """An image query: the SHA-256 of its decoded pixels (the same for an upload, base64 or a
    URL of one image) and its base embedding (float16, base64)."""
    return Query(
        kind="image",
        image_sha256=hashlib.sha256(np.ascontiguousarray(rgb).tobytes()).hexdigest(),
        embedding_f16=encode_base64(embedding),
        filters=filters,
    )


class KafkaSender:
    """One kafka-python producer shared by the impression thread and interaction requests
    (it is thread-safe); created lazily so the API starts while Kafka is down."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self._producer: KafkaProducer | None = None
        self._lock = threading.Lock()

    def producer(self) -> KafkaProducer:
        with self._lock:
            if self._producer is None:
                # max_block_ms bounds every send while Kafka is down
                self._producer = kafka_producer(
                    self.bootstrap, max_block_ms=5000, request_timeout_ms=10000
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


class InteractionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    impression_id: Identifier = Field(description="From the search response")
    product_id: ProductId
    position: int | None = Field(default=None, ge=1, le=1000)
    type: Literal["click", "add_to_cart", "purchase"] = "click"


class InteractionAccepted(BaseModel):
    interaction: Interaction


router = APIRouter(prefix="/v1")


@router.post(
    "/interactions",
    status_code=202,
    summary="Report a click (or add-to-cart, purchase) on a search result",
    responses={503: {"description": "Kafka did not acknowledge; retry"}},
)
def report_interaction(
    state: State,
    body: InteractionRequest,
    x_session_id: SessionHeader = None,
    x_user_id: UserHeader = None,
) -> InteractionAccepted:
    event = Interaction(
        type=f"interaction.{body.type}",  # type: ignore[arg-type]
        impression_id=body.impression_id,
        session_id=x_session_id or "anonymous",
        user_id=x_user_id,
        product_id=body.product_id,
        position=body.position,
    )
    try:
        state.sender.send(
            state.settings.interactions_topic,
            event.impression_id,
            event.model_dump_json().encode(),
            timeout_s=10.0,
        )
    except KafkaError as exc:
        raise ApiError(
            503, "events_unavailable", f"could not record the interaction: {exc}"
        ) from exc
    return InteractionAccepted(interaction=event)


def shown(product_ids: list[str], offset: int) -> list[Shown]:
    return [Shown(product_id=p, position=offset + i) for i, p in enumerate(product_ids, 1)]
