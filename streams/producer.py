"""The producer platform teams import: validates every event before it reaches Kafka.

    from streams.producer import ProductProducer
    with ProductProducer("broker:9092", "stylestream.products.v1") as p:
        p.send(ProductUpsert(...))

Events are keyed by product id, so every version of a product lands on one partition, in order.
``OutfitProducer`` does the same for ``outfits.v1``, keyed by outfit id.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, TypeVar

from pydantic import ValidationError
from tqdm import tqdm

from config.kafka import KafkaConfig, kafka_producer
from schemas.events import (
    ProductDelete,
    ProductUpsert,
    UnknownSchemaVersion,
    encode_event,
    parse_product_event,
    utcnow,
)
from schemas.outfits import OutfitDelete, OutfitUpsert, encode_outfit_event, parse_outfit_event
from schemas.validation import describe

T = TypeVar("T")


class InvalidEvent(ValueError):
    """An event refused before sending, with the reason."""


def _checked(parse: Callable[[dict[str, Any]], T], payload: dict[str, Any]) -> T:
    try:
        return parse(payload)
    except UnknownSchemaVersion as exc:
        raise InvalidEvent(str(exc)) from exc
    except ValidationError as exc:
        raise InvalidEvent(describe(exc.errors())) from exc


def validate(payload: dict[str, Any]) -> ProductUpsert | ProductDelete:
    return _checked(parse_product_event, payload)


E = TypeVar("E", ProductUpsert | ProductDelete, OutfitUpsert | OutfitDelete)


class EventProducer(Generic[E]):
    """Validated, keyed events to one topic: the product and outfit producers below."""

    def __init__(self, kafka: KafkaConfig | str, topic: str, **kafka_options: Any) -> None:
        """``kafka``: a broker list, or a KafkaConfig with TLS/SASL; ``kafka_options``: any
        other kafka-python producer option."""
        self.topic = topic
        self._producer = kafka_producer(kafka, **kafka_options)

    def _key(self, event: E) -> str:
        raise NotImplementedError

    def _encode(self, event: E) -> bytes:
        raise NotImplementedError

    def _validate(self, payload: dict[str, Any]) -> E:
        raise NotImplementedError

    def send(self, event: E) -> Future[Any]:
        if event.produced_at is None:
            event = event.model_copy(update={"produced_at": utcnow()})
        future: Future[Any] = self._producer.send(
            self.topic, key=self._key(event).encode(), value=self._encode(event)
        )
        return future

    def send_payload(self, payload: dict[str, Any]) -> Future[Any]:
        """Validate a decoded JSON object, then send it; raises InvalidEvent."""
        return self.send(self._validate(payload))

    def flush(self, timeout: float | None = 60) -> None:
        self._producer.flush(timeout=timeout)

    def close(self) -> None:
        self._producer.close()

    def __enter__(self) -> EventProducer[E]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.flush()
        self.close()


class ProductProducer(EventProducer[ProductUpsert | ProductDelete]):
    def _key(self, event: ProductUpsert | ProductDelete) -> str:
        return event.product_id

    def _encode(self, event: ProductUpsert | ProductDelete) -> bytes:
        return encode_event(event)

    def _validate(self, payload: dict[str, Any]) -> ProductUpsert | ProductDelete:
        return validate(payload)


class OutfitProducer(EventProducer[OutfitUpsert | OutfitDelete]):
    """Outfit events to ``outfits.v1``, keyed by outfit id (issue 17)."""

    def _key(self, event: OutfitUpsert | OutfitDelete) -> str:
        return event.outfit_id

    def _encode(self, event: OutfitUpsert | OutfitDelete) -> bytes:
        return encode_outfit_event(event)

    def _validate(self, payload: dict[str, Any]) -> OutfitUpsert | OutfitDelete:
        return _checked(parse_outfit_event, payload)


@dataclass
class ProduceReport:
    sent: int = 0
    invalid: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)


def read_jsonl(path: Path) -> Iterator[tuple[int, str]]:
    with path.open() as f:
        for number, line in enumerate(f, start=1):
            if line.strip():
                yield number, line


def produce_file(producer: EventProducer[Any], path: Path, progress: bool = True) -> ProduceReport:
    """Send every valid line of a JSONL file; invalid lines are reported, never sent."""
    report = ProduceReport()
    total = sum(1 for _ in read_jsonl(path))
    with tqdm(total=total, unit="event", disable=not progress, desc=f"produce {path.name}") as bar:
        for number, line in read_jsonl(path):
            try:
                payload = json.loads(line)
                if not isinstance(payload, dict):
                    raise InvalidEvent("each line must be a JSON object")
                producer.send_payload(payload)
                report.sent += 1
            except (json.JSONDecodeError, InvalidEvent) as exc:
                report.invalid.append((number, str(exc)))
            bar.update(1)
    producer.flush()
    return report
