"""The production profile (no service): unsafe settings are named, and the serving processes
refuse to start with them; the Kafka, Postgres and Milvus credentials reach every client."""

from __future__ import annotations

import ssl
from urllib.parse import parse_qs, urlsplit

import faust
import pytest
from click.testing import CliRunner
from pydantic import SecretStr

from config.kafka import KafkaConfig
from config.settings import Settings
from streams.app import faust_credentials
from stylestream.cli import main

SAFE = {
    "env": "production",
    "api_session_key": "k" * 32,
    "api_keys": "key-1-0123456789ab,key-2-0123456789ab",
    "postgres_dsn": "postgresql+psycopg2://app:s3cr3t-9f@db.internal:5432/stylestream",
    "pg_sslmode": "verify-full",
    "kafka_security_protocol": "SASL_SSL",
    "kafka_sasl_username": "stylestream",
    "kafka_sasl_password": "kafka-s3cr3t",
    "milvus_token": "root:milvus-s3cr3t",
    "split_key": "s" * 32,
}


def test_the_defaults_are_named_unsafe_one_by_one() -> None:
    problems = "\n".join(Settings(env="production").production_problems())
    for name in (
        "API_SESSION_KEY",
        "API_KEYS",
        "POSTGRES_DSN",
        "PG_SSLMODE",
        "SASL_SSL",
        "MILVUS_TOKEN",
        "SPLIT_KEY",
    ):
        assert name in problems
    assert Settings(**SAFE).production_problems() == []  # type: ignore[arg-type]
    for unsafe in (
        {"postgres_dsn": "postgresql+psycopg2://stylestream:stylestream@db/x"},
        {"allowed_image_roots": "/"},
        {"kafka_sasl_password": None},
    ):
        assert len(Settings(**{**SAFE, **unsafe}).production_problems()) == 1, unsafe  # type: ignore[arg-type]


@pytest.mark.parametrize("command", ["worker", "mine", "api"])
def test_serving_processes_refuse_to_start_in_production(command: str) -> None:
    result = CliRunner().invoke(main, [command], env={"STYLESTREAM_ENV": "production"})
    assert result.exit_code == 1
    assert "refusing to start in production" in result.output
    assert "STYLESTREAM_API_KEYS" in result.output and "Kafka without SASL_SSL" in result.output


def test_training_refuses_an_unkeyed_split_in_production() -> None:
    env = {"STYLESTREAM_ENV": "production", "STYLESTREAM_SPLIT_KEY": "short"}
    result = CliRunner().invoke(main, ["train", "embedding"], env=env)
    assert result.exit_code == 1 and "STYLESTREAM_SPLIT_KEY" in result.output


def test_credentials_reach_kafka_postgres_and_milvus_clients() -> None:
    settings = Settings(**SAFE)  # type: ignore[arg-type]
    kafka = KafkaConfig.of(settings)
    options = kafka.client_options()
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == (
        "stylestream",
        "kafka-s3cr3t",
    )
    credentials = faust_credentials(kafka)
    assert isinstance(credentials, faust.SASLCredentials)
    assert isinstance(credentials.ssl_context, ssl.SSLContext)
    assert faust_credentials(KafkaConfig("k:9092")) is None
    assert settings.pg_dsn.endswith("/stylestream?sslmode=verify-full")
    rooted = make(
        pg_sslrootcert="/etc/stylestream/tls/ca.crt",
        postgres_dsn=SAFE["postgres_dsn"] + "?sslrootcert=/elsewhere&connect_timeout=5",
    )
    assert parse_qs(urlsplit(rooted.pg_dsn).query) == {
        "connect_timeout": ["5"],
        "sslmode": ["verify-full"],
        "sslrootcert": ["/etc/stylestream/tls/ca.crt"],
    }
    assert "s3cr3t" not in repr(settings)  # secrets never printed with the settings
    assert isinstance(settings.milvus_token, SecretStr)


def make(**changes: object) -> Settings:
    return Settings(**{**SAFE, **changes})  # type: ignore[arg-type]


def test_blank_or_short_secrets_are_unsafe() -> None:
    blank = make(api_session_key="", api_keys=" ,,")
    assert blank.api_keys == []  # a blank key would have accepted a missing header
    problems = "\n".join(blank.production_problems())
    assert "API_SESSION_KEY" in problems and "API_KEYS is empty" in problems
    short = make(api_keys="short")
    assert short.production_problems() == ["STYLESTREAM_API_KEYS holds a key under 16 characters"]
    prefer = make(pg_sslmode=None, postgres_dsn=SAFE["postgres_dsn"] + "?sslmode=prefer")
    assert any("without TLS" in p for p in prefer.production_problems())
    assert "kafka-s3cr3t" not in repr(KafkaConfig.of(make()))
