"""The project's Kafka producer settings, in one place for the product producer and the API
(kept apart from config/assembly.py so that importing the producer loads kafka-python only)."""

from __future__ import annotations

from typing import Any

from kafka import KafkaProducer


def kafka_producer(bootstrap: str, **overrides: Any) -> KafkaProducer:
    """A kafka-python producer whose every write is acknowledged by all in-sync replicas, with
    one request in flight (a key's events stay in order across retries)."""
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "acks": "all",
        "linger_ms": 20,
        "retries": 5,
        "max_in_flight_requests_per_connection": 1,
        **overrides,
    }
    return KafkaProducer(**options)
