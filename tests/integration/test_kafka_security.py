"""Every Kafka client of the project against a real broker that demands SASL (SCRAM-SHA-512)
over TLS, as the production profile does: the worker (Faust), the producer, the dead-letter
path and the API's impressions authenticate with the settings alone; a client without the
credentials, or without TLS, gets nothing from the broker."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from api.app import create_app
from config.kafka import KafkaConfig
from config.settings import Settings
from deploy.local.kafka import KafkaService
from deploy.local.process import free_port
from schemas.dead_letter import ErrorKind
from schemas.interactions import SearchImpression
from streams.producer import ProductProducer
from tests.events import photo, upsert
from tests.integration.conftest import Stack, Worker, read_topic, wait_for
from tests.synthetic import encode

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def secure_kafka(
    running_services: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """A second local broker (SASL_SSL only, its own development CA); yields the settings
    that reach it."""
    home = tmp_path_factory.mktemp("secure-kafka")
    overrides = {
        "kafka_bootstrap": f"127.0.0.1:{free_port()}",
        "kafka_controller_port": str(free_port()),
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_mechanism": "SCRAM-SHA-512",
        "kafka_sasl_username": "stylestream-test",
        "kafka_sasl_password": secrets.token_urlsafe(18),
        "kafka_ssl_cafile": str(home / "ca.pem"),
    }
    service = KafkaService(
        Settings(data_dir=home, **overrides),  # type: ignore[arg-type]
        libs=KafkaService(running_services).libs,  # the jars `dev up` fetched
    )
    service.up()
    yield overrides
    service.down()


@pytest.fixture(scope="module")
def stack(make_stack: Callable[..., Stack], secure_kafka: dict[str, str]) -> Iterator[Stack]:
    stack = make_stack(**secure_kafka)
    yield stack
    stack.dispose()  # while its broker is up


def test_the_worker_indexes_and_dead_letters_over_sasl_ssl(
    stack: Stack, start_worker: Callable[[Stack], Worker]
) -> None:
    worker = start_worker(stack)
    with ProductProducer(KafkaConfig.of(stack.settings), stack.settings.products_topic) as p:
        for i in range(3):
            p.send(upsert(f"s{i}", 1, i))
    stack.send_raw([(b"broken", b"{not json")])
    wait_for(lambda: stack.repo.count_products() == 3, timeout=120)
    assert sorted(stack.index.get(["s0", "s1", "s2"])) == ["s0", "s1", "s2"]
    letters = stack.dead_letters(expected=1, keys=["broken"])
    assert [(dl.original_key, dl.error_kind) for dl in letters] == [("broken", ErrorKind.NOT_JSON)]
    assert worker.running(), worker.tail()


def test_the_api_emits_impressions_over_sasl_ssl(stack: Stack) -> None:
    body = {"image_base64": base64.b64encode(encode(photo(7)[0])).decode(), "k": 3}
    with TestClient(create_app(stack.settings)) as client:
        answer = client.post("/v1/search", json=body)
    assert answer.status_code == 200, answer.text
    found = read_topic(stack, stack.settings.impressions_topic)(answer.json()["impression_id"])
    assert len(found) == 1 and isinstance(found[0], SearchImpression)


@pytest.mark.parametrize(
    "client_options",
    [
        {},  # PLAINTEXT
        {"security_protocol": "SSL"},  # TLS but no SASL
        {"security_protocol": "SASL_SSL", "sasl_plain_password": "not-the-password"},
    ],
    ids=["plaintext", "tls-without-sasl", "wrong-password"],
)
def test_a_client_without_the_credentials_is_refused(
    secure_kafka: dict[str, str], client_options: dict[str, Any]
) -> None:
    good = KafkaConfig.of(Settings(**secure_kafka)).client_options()  # type: ignore[arg-type]
    admin = KafkaAdminClient(**good, request_timeout_ms=5000)
    assert admin.list_topics() is not None  # the control: the right credentials work
    admin.close()
    options: dict[str, Any] = {"bootstrap_servers": good["bootstrap_servers"]}
    if client_options:
        options.update(ssl_cafile=good["ssl_cafile"], **client_options)
    if options.get("security_protocol") == "SASL_SSL":
        options.update(
            sasl_mechanism="SCRAM-SHA-512", sasl_plain_username=good["sasl_plain_username"]
        )
    with pytest.raises(KafkaError):
        KafkaAdminClient(**options, request_timeout_ms=3000, api_version_auto_timeout_ms=3000)
