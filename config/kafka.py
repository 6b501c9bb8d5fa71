"""How every Kafka client of the project connects: the broker list and its security (TLS,
SASL), from the settings, for kafka-python clients here and for Faust (streams/app.py); and
the producer settings shared by the product producer and the API (kept apart from
config/assembly.py so that importing the producer loads kafka-python only)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

from config.settings import Settings


@dataclass(frozen=True)
class KafkaConfig:
    bootstrap: str
    security_protocol: str = "PLAINTEXT"  # SSL, SASL_PLAINTEXT, SASL_SSL
    sasl_mechanism: str = "SCRAM-SHA-512"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ssl_cafile: Path | None = None

    @classmethod
    def of(cls, settings: Settings) -> KafkaConfig:
        password = settings.kafka_sasl_password
        return cls(
            settings.kafka_bootstrap,
            settings.kafka_security_protocol,
            settings.kafka_sasl_mechanism,
            settings.kafka_sasl_username,
            password.get_secret_value() if password is not None else None,
            settings.kafka_ssl_cafile,
        )

    @property
    def sasl(self) -> bool:
        return self.security_protocol.startswith("SASL")

    @property
    def tls(self) -> bool:
        return self.security_protocol.endswith("SSL")

    def client_options(self) -> dict[str, Any]:
        """kafka-python's connection options."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap,
            "security_protocol": self.security_protocol,
        }
        if self.sasl:
            options.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.username,
                sasl_plain_password=self.password,
            )
        if self.tls and self.ssl_cafile is not None:
            options["ssl_cafile"] = str(self.ssl_cafile)
        return options


def kafka_producer(config: KafkaConfig | str, **overrides: Any) -> KafkaProducer:
    """A kafka-python producer whose every write is acknowledged by all in-sync replicas, with
    one request in flight (a key's events stay in order across retries). ``config``: the
    project's Kafka config, or just a broker list (PLAINTEXT)."""
    config = KafkaConfig(config) if isinstance(config, str) else config
    options: dict[str, Any] = {
        **config.client_options(),
        "acks": "all",
        "linger_ms": 20,
        "retries": 5,
        "max_in_flight_requests_per_connection": 1,
        **overrides,
    }
    return KafkaProducer(**options)


def kafka_admin(settings: Settings, **overrides: Any) -> KafkaAdminClient:
    return KafkaAdminClient(**KafkaConfig.of(settings).client_options(), **overrides)


def kafka_consumer(settings: Settings, **overrides: Any) -> KafkaConsumer:
    return KafkaConsumer(**KafkaConfig.of(settings).client_options(), **overrides)
