"""Real services: the local Kafka, Postgres and Milvus Lite server from `stylestream dev up`
(started here if they are not running). Each stack gets its own topics, consumer group,
database and collection, so tests never see each other's data."""

from __future__ import annotations

import json
import os
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as generated
from kafka import KafkaProducer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families
from schemathesis.specs.openapi.checks import positive_data_acceptance

from api.app import create_app
from bench.processes import Process
from config import assembly
from config.kafka import KafkaConfig, kafka_admin, kafka_consumer, kafka_producer
from config.settings import Settings
from deploy.local.postgres import PostgresService
from deploy.local.process import free_port
from processors.products import ProductProcessor, RawEvent
from schemas.dead_letter import DeadLetter
from schemas.events import ProductUpsert, encode_event
from schemas.interactions import parse_interaction_event
from stores.base import FixedTarget
from stores.dead_letters import PostgresOriginals
from stores.migrate import upgrade
from stores.milvus import MilvusVectorIndex, drop_prefixed
from stores.postgres import PostgresRepository
from stores.writer import ProductWriter
from streams.dead_letters import Selection, original_of, read_letters
from streams.topics import ensure_topics, topic_specs

pytestmark = pytest.mark.services


def wait_for(check: Callable[[], Any], timeout: float = 60.0, interval: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value: {value!r})")
        time.sleep(interval)


@dataclass
class Stack:
    settings: Settings
    overrides: dict[str, str]
    repo: PostgresRepository = field(init=False)
    index: MilvusVectorIndex = field(init=False)
    disposed: bool = False

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STYLESTREAM_")}
        env.update({f"STYLESTREAM_{k.upper()}": v for k, v in self.overrides.items()})
        return env

    def dispose(self) -> None:
        """Drop the stack's collections, database and topics (once; a module whose broker
        ends before the session disposes of its stack itself)."""
        if self.disposed:
            return
        self.disposed = True
        # the collection and what re-indexing created beside it
        drop_prefixed(self.index.client, self.settings.milvus_collection)
        # not self.index.close(): pymilvus shares one connection among the clients of a URI,
        # and closing it here would close it under every other stack and app of the session
        self.repo.close()
        PostgresService(self.settings).drop_database(self.settings.pg_database)
        admin = kafka_admin(self.settings)
        admin.delete_topics(list(topic_specs(self.settings)))
        admin.close()

    def original(self, letter: DeadLetter) -> bytes | None:
        """A dead letter's original, inline or kept aside in this stack's Postgres."""
        return original_of(letter, PostgresOriginals(self.repo.engine))

    def write(self, processor: ProductProcessor, events: Sequence[ProductUpsert]) -> None:
        """Process and store products directly (no Kafka, no worker): a test's catalogue."""
        ProductWriter(FixedTarget(self.index), self.repo).write(
            processor.process([RawEvent(encode_event(e)) for e in events])
        )

    def producer(self) -> KafkaProducer:
        return kafka_producer(KafkaConfig.of(self.settings), linger_ms=0)

    def send_raw(self, values: list[tuple[bytes | None, bytes | None]]) -> None:
        producer = self.producer()
        for key, value in values:
            producer.send(self.settings.products_topic, key=key, value=value)
        producer.flush()
        producer.close()

    def dead_letters(
        self, expected: int = 0, timeout: float = 60.0, keys: Sequence[str] = ()
    ) -> list[DeadLetter]:
        """The dead-letter topic from its start, once it holds ``expected`` letters and one
        for each of ``keys`` (or the timeout passed); one letter per origin, as readers do
        (streams/dead_letters.py, the `stylestream dlq` reader)."""
        deadline = time.monotonic() + timeout
        while True:
            letters = [found.letter for found in read_letters(self.settings, Selection()).letters]
            missing = set(keys) - {dl.original_key for dl in letters}
            if (len(letters) >= expected and not missing) or time.monotonic() > deadline:
                return letters
            time.sleep(0.5)


def read_topic(stack: Stack, topic: str, timeout: float = 30.0) -> Callable[[str], list[object]]:
    """A reader that returns every event on ``topic`` with a given key, polling until found."""

    def find(key: str) -> list[object]:
        consumer = kafka_consumer(stack.settings)
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        found: list[object] = []
        deadline = time.monotonic() + timeout
        while not found and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                found += [
                    parse_interaction_event(json.loads(r.value))
                    for r in records
                    if r.key == key.encode()
                ]
        consumer.close()
        return found

    return find


@pytest.fixture(scope="session")
def make_stack(
    running_services: Settings, model_path: Path, attribute_models: tuple[Path, Path]
) -> Iterator[Callable[..., Stack]]:
    created: list[Stack] = []

    def make(**extra: str) -> Stack:
        uid = uuid.uuid4().hex[:8]
        overrides = {
            "topic_prefix": f"test-{uid}.",
            "app_id": f"test-worker-{uid}",
            "miner_app_id": f"test-miner-{uid}",
            "milvus_collection": f"test_{uid}",
            "pg_database": f"test_{uid}",
            "metrics_port": str(free_port()),
            "topic_partitions": "2",
            "batch_within_s": "0.2",
            "api_rate_per_s": "0",  # tests send bursts from one client (its own test checks it)
            **extra,
        }
        settings = Settings(**overrides)  # type: ignore[arg-type]
        PostgresService(settings).ensure_database(settings.pg_database)
        upgrade(settings.pg_dsn)
        ensure_topics(settings)
        stack = Stack(settings, overrides)
        stack.repo = PostgresRepository.from_dsn(settings.pg_dsn)
        stack.index = MilvusVectorIndex.open(
            assembly.milvus_config(settings),
            settings.milvus_collection,
            assembly.base_model(settings)[1],
        )
        created.append(stack)
        return stack

    yield make
    for stack in created:
        stack.dispose()


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[TestClient]:
    """The API app over the requesting module's own ``stack`` fixture."""
    with TestClient(create_app(stack.settings)) as c:
        yield c


class Worker(Process):
    """A real `stylestream worker` process."""

    def __init__(self, stack: Stack, log_dir: Path) -> None:
        super().__init__(
            ["worker", "--loglevel", "warning"],
            log_dir / f"worker-{uuid.uuid4().hex[:6]}.log",
            stack.env(),
        )
        self.stack = stack

    def metrics(self) -> dict[str, float]:
        url = f"http://127.0.0.1:{self.stack.settings.metrics_port}/metrics"
        try:
            text = urllib.request.urlopen(url, timeout=2).read().decode()
        except OSError:
            return {}
        out: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
                out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
        return out

    def metric(self, name: str) -> float:
        return self.metrics().get(name, 0.0)

    def wait_consumed(self, count: float, timeout: float = 60.0) -> None:
        wait_for(lambda: self.metric("stylestream_events_consumed_total") >= count, timeout)


@pytest.fixture(scope="session")
def start_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[Stack], Worker]]:
    workers: list[Worker] = []
    log_dir = tmp_path_factory.mktemp("workers")

    def start(stack: Stack) -> Worker:
        worker = Worker(stack, log_dir)
        workers.append(worker)
        # ready once its metrics endpoint answers (after the model and stores are open)
        wait_for(lambda: worker.proc.poll() is not None or worker.metrics(), timeout=90)
        assert worker.running(), worker.tail()
        return worker

    yield start
    for worker in workers:
        worker.stop()


def generated_requests_hold(client: TestClient, examples: int, path: str | None = None) -> set[str]:
    """Generated requests (schemathesis, from the served OpenAPI document) to every operation,
    or to ``path``'s alone, never get a 5xx, and every response matches the document; the
    paths the document serves come back."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    operations = [r.ok() for r in schema.get_all_operations()]  # type: ignore[union-attr]
    chosen = [op for op in operations if path is None or op.path == path]
    assert chosen, f"the document serves no {path}"
    for operation in chosen:

        @given(case=operation.as_strategy())
        @generated(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case: schemathesis.Case) -> None:  # type: ignore[type-arg]
            # A schema cannot say "decodes as an image", so schema-valid bytes may fairly
            # get a 4xx: that one heuristic check is off; every other check stays on.
            case.call_and_validate(excluded_checks=[positive_data_acceptance])

        check()
    return {op.path for op in operations}
