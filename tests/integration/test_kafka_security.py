"""Every Kafka client of the project against a real broker that demands SASL (SCRAM-SHA-512)
over TLS, as the production profile does: the worker (Faust), the producer, the dead-letter
path and the API's impressions authenticate with the settings alone; a client without the
credentials, or without TLS, gets nothing from the broker."""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from kafka import KafkaAdminClient
from kafka.errors import KafkaTimeoutError

from api.app import create_app
from config.kafka import KafkaConfig
from config.settings import Settings
from deploy.local.kafka import KafkaService
from deploy.local.process import free_port
from deploy.validate import load_k8s
from schemas.dead_letter import ErrorKind
from schemas.interactions import SearchImpression
from streams.producer import ProductProducer
from tests.events import photo, upsert
from tests.integration.conftest import Stack, Worker, read_topic, wait_for
from tests.synthetic import encode

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def broker(
    running_services: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[dict[str, str], KafkaService]]:
    """A second local broker (SASL_SSL only, its own development CA), with the settings that
    reach it."""
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
    yield overrides, service
    service.down()


@pytest.fixture(scope="module")
def secure_kafka(broker: tuple[dict[str, str], KafkaService]) -> dict[str, str]:
    return broker[0]


@pytest.fixture(scope="module")
def stack(make_stack: Callable[..., Stack], secure_kafka: dict[str, str]) -> Iterator[Stack]:
    stack = make_stack(**secure_kafka)
    yield stack
    stack.dispose()  # while its broker is up


def test_the_worker_indexes_and_dead_letters_over_sasl_ssl(
    stack: Stack, start_worker: Callable[[Stack], Worker]
) -> None:
    worker = start_worker(stack)
    try:
        with ProductProducer(KafkaConfig.of(stack.settings), stack.settings.products_topic) as p:
            for i in range(3):
                p.send(upsert(f"s{i}", 1, i))
        stack.send_raw([(b"broken", b"{not json")])
        wait_for(lambda: stack.repo.count_products() == 3, timeout=120)
        assert sorted(stack.index.get(["s0", "s1", "s2"])) == ["s0", "s1", "s2"]
        letters = stack.dead_letters(expected=1, keys=["broken"])
        assert [(dl.original_key, dl.error_kind) for dl in letters] == [
            ("broken", ErrorKind.NOT_JSON)
        ]
        assert worker.running(), worker.tail()
    finally:
        worker.stop()  # its broker stops with this module


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
    broker: tuple[dict[str, str], KafkaService], client_options: dict[str, Any]
) -> None:
    """Refused right after the right credentials were served (and, for a wrong password, the
    broker's log records the failed authentication)."""
    overrides, service = broker
    good = KafkaConfig.of(Settings(**overrides)).client_options()  # type: ignore[arg-type]
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
    refusals = service.log_file.read_text().count("Failed authentication")
    with pytest.raises(KafkaTimeoutError, match="Unable to bootstrap"):
        KafkaAdminClient(**options, request_timeout_ms=3000, bootstrap_timeout_ms=8000)
    if options.get("security_protocol") == "SASL_SSL":  # (others are dropped at DEBUG level)
        # the broker logs a refusal a moment after it answers (failed-authentication delay)
        log = service.log_file
        wait_for(lambda: log.read_text().count("Failed authentication") > refusals, 15)


def test_the_manifests_kafka_start_script_writes_a_config_kafka_accepts(
    running_services: Settings, tmp_path: Path
) -> None:
    """deploy/k8s's start script, run here with the image's paths moved into a folder: its
    files are private, it refuses unsafe passwords, and Kafka's own storage tool (the real
    jars) accepts the properties it writes and creates both SCRAM users from them."""
    script = next(
        d for ds in load_k8s().values() for d in ds if d["metadata"]["name"] == "kafka-start"
    )["data"]
    (tmp_path / "bin").mkdir()
    (tmp_path / "run").mkdir()
    (tmp_path / "tls").mkdir()
    for name in ("tls.key", "tls.crt", "ca.crt"):
        (tmp_path / "tls" / name).write_text(f"-----{name}-----\n")
    libs = KafkaService(running_services).libs
    storage = tmp_path / "bin" / "kafka-storage.sh"
    storage.write_text(f'exec java -cp "{libs}/*" kafka.tools.StorageTool "$@"\n')
    (tmp_path / "bin" / "kafka-server-start.sh").write_text('echo "would start with $1"\n')
    for tool in (tmp_path / "bin").iterdir():
        tool.chmod(0o755)
    moved = {
        "/opt/stylestream/": f"{tmp_path}/",
        "/var/run/kafka": f"{tmp_path}/run",
        "/etc/kafka/tls": f"{tmp_path}/tls",
        "/opt/kafka/bin/": f"{tmp_path}/bin/",
        "log.dirs=/var/lib/kafka/data": f"log.dirs={tmp_path}/data",
    }
    for name, text in script.items():
        for old, new in moved.items():
            text = text.replace(old, new)
        (tmp_path / name).write_text(text)
    env = {
        "PATH": os.environ["PATH"],
        "HOSTNAME": "kafka-2",
        "CLUSTER_ID": "c3R5bGVzdHJlYW0ta2Fmaw",
        "KAFKA_BROKER_PASSWORD": "broker-s3cret",
        "STYLESTREAM_KAFKA_SASL_USERNAME": "stylestream",
        "STYLESTREAM_KAFKA_SASL_PASSWORD": "app-s3cret",
    }
    run = subprocess.run(
        ["sh", str(tmp_path / "start.sh")], env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    assert "would start with" in run.stdout
    props = dict(
        line.split("=", 1)
        for line in (tmp_path / "run" / "server.properties").read_text().split("\n")
        if line
    )
    assert props["node.id"] == "2"
    assert props["advertised.listeners"] == "CLIENT://kafka-2.kafka-headless:9092"
    assert props["ssl.principal.mapping.rules"] == "RULE:^CN=([^,]+).*$/$1/,DEFAULT"
    assert (
        'password="broker-s3cret";' in props["listener.name.client.scram-sha-512.sasl.jaas.config"]
    )
    for private in ("server.properties", "server.pem"):
        assert (tmp_path / "run" / private).stat().st_mode & 0o077 == 0
    formatted = (tmp_path / "data" / "meta.properties").read_text()
    assert "node.id=2" in formatted and "c3R5bGVzdHJlYW0ta2Fmaw" in formatted
    unsafe = {**env, "STYLESTREAM_KAFKA_SASL_PASSWORD": 'a"b'}
    refused = subprocess.run(
        ["sh", str(tmp_path / "start.sh")], env=unsafe, capture_output=True, text=True
    )
    assert refused.returncode == 1 and "no quotes" in refused.stderr
