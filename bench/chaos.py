"""The chaos run: N workers on a P-partition topic take a stream of product events (upserts,
redeliveries, stale versions, deletes, hostile events) while workers are SIGKILLed and
restarted and Kafka and Milvus are each restarted once; then the stores are checked against
the stream's own truth: every product in its latest version exactly once in Postgres and in
Milvus, deleted ones in neither, every hostile event dead-lettered once with its reason and
no good event among the letters, and the workers' committed offsets at the end of the topic.

Everything runs on services of its own (a Kafka broker, a Postgres, a Milvus Lite server in a
scratch folder), so the run may restart them. `stylestream bench chaos` writes the JSON; the
test suite runs a short one (tests/integration/test_chaos.py)."""

from __future__ import annotations

import base64
import io
import json
import os
import random
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from kafka import TopicPartition
from PIL import Image

from bench.processes import Process
from config.kafka import KafkaConfig, kafka_admin, kafka_consumer, kafka_producer
from config.settings import Settings
from deploy.local.kafka import KafkaService
from deploy.local.milvus import MilvusLiteService
from deploy.local.postgres import PostgresService
from deploy.local.process import free_port
from schemas.dead_letter import DeadLetter, ErrorKind
from schemas.events import ImageRef, ProductDelete, ProductUpsert, encode_event, utcnow
from stores.migrate import upgrade
from stores.milvus import MilvusConfig, MilvusVectorIndex
from stores.postgres import PostgresRepository
from streams.dead_letters import Selection, read_letters
from streams.topics import ensure_topics
from training.datasets import CLASSES, load_split

Record = tuple[bytes, bytes]


@dataclass(frozen=True)
class ChaosSizes:
    events: int = 5000
    products: int = 1200
    workers: int = 3
    partitions: int = 6
    kills: int = 5
    hostile: int = 24
    restart_kafka: bool = True
    restart_milvus: bool = True
    timeout_s: float = 900.0

    @classmethod
    def long(cls) -> ChaosSizes:
        return cls(events=50_000, products=8000, kills=20, hostile=100, timeout_s=5400.0)


@dataclass
class Truth:
    """What the stream says each product ends as, and what must be dead-lettered."""

    final: dict[str, tuple[int, bool]] = field(default_factory=dict)  # id -> (version, deleted)
    hostile: dict[str, ErrorKind] = field(default_factory=dict)  # key -> expected kind


HOSTILE: list[tuple[ErrorKind, Callable[[str, bytes], Record]]] = [
    (ErrorKind.NOT_JSON, lambda key, good: (key.encode(), b"{not json")),
    (ErrorKind.NOT_JSON, lambda key, good: (key.encode(), b"[" * 5000 + b"]" * 5000)),
    (
        ErrorKind.SCHEMA_VIOLATION,
        lambda key, good: (
            key.encode(),
            json.dumps({"schema_version": 1, "product_id": key}).encode(),
        ),
    ),
    (ErrorKind.KEY_MISMATCH, lambda key, good: (key.encode(), good)),
    (
        ErrorKind.UNDECODABLE_IMAGE,
        lambda key, good: (key.encode(), _with_image(good, key, b"\x89PNG\r\n\x1a\nbroken")),
    ),
]


def _with_image(good: bytes, key: str, image: bytes) -> bytes:
    event = json.loads(good)
    event["product_id"] = key
    event["image"] = {"data_base64": base64.b64encode(image).decode()}
    return json.dumps(event).encode()


def plan(sizes: ChaosSizes, seed: int = 7) -> tuple[list[Record], Truth]:
    """The stream, in send order, and its truth. Versions of a product only grow with new
    operations; redeliveries repeat an earlier record; stale ones resend an older version."""
    rng = random.Random(seed)
    images, labels = load_split("train")
    photos = [_png(images[i]) for i in range(64)]
    sent: dict[str, list[Record]] = {}
    truth = Truth()
    records: list[Record] = []
    hostile_at = set(rng.sample(range(sizes.events), sizes.hostile))
    for n in range(sizes.events):
        if n in hostile_at:
            key = f"hostile-{n}"
            kind, make = HOSTILE[len(truth.hostile) % len(HOSTILE)]
            good = _upsert("seed-product", 1, photos[0], int(labels[0]))
            records.append(make(key, good))
            truth.hostile[key] = kind
            continue
        pid = f"c{rng.randrange(sizes.products):05d}"
        history = sent.setdefault(pid, [])
        version, deleted = truth.final.get(pid, (0, True))
        roll = rng.random()
        if history and roll < 0.10:  # a redelivery of its latest record
            records.append(history[-1])
            continue
        if len(history) > 1 and roll < 0.18:  # a stale version, out of order
            records.append(history[rng.randrange(len(history) - 1)])
            continue
        if history and not deleted and roll < 0.28:
            gone = ProductDelete(product_id=pid, version=version + 1, produced_at=utcnow())
            record = (pid.encode(), encode_event(gone))
            truth.final[pid] = (version + 1, True)
        else:
            i = rng.randrange(len(photos))
            record = (pid.encode(), _upsert(pid, version + 1, photos[i], int(labels[i])))
            truth.final[pid] = (version + 1, False)
        history.append(record)
        records.append(record)
    return records, truth


def _png(image: Any) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, format="PNG")
    return out.getvalue()


def _upsert(pid: str, version: int, png: bytes, label: int) -> bytes:
    return encode_event(
        ProductUpsert(
            product_id=pid,
            version=version,
            title=f"SYNTHETIC chaos product {pid} v{version}",
            category=CLASSES[label],
            price=Decimal("10.00"),
            currency="EUR",
            image=ImageRef(data_base64=base64.b64encode(png).decode()),
            synthetic_fields=["title", "price", "currency"],
            produced_at=utcnow(),
        )
    )


@dataclass
class ChaosReport:
    sizes: dict[str, Any]
    events_sent: int = 0
    products: int = 0
    live: int = 0
    deleted: int = 0
    lost: int = 0  # a product not at its latest version in a store, or a deleted one still there
    duplicated: int = 0  # Milvus rows beyond one per product; letters beyond one per event
    diverged: int = 0  # products on which Postgres and Milvus disagree
    wrong_letters: int = 0  # good events dead-lettered, or hostile ones for another reason
    missing_letters: int = 0  # hostile events never dead-lettered
    lag_at_end: int = 0  # events between the workers' committed offsets and the topic's end
    redelivered_letters: int = 0  # a letter sent again for its origin (not a duplicate event)
    kills: int = 0
    kafka_restarts: int = 0
    milvus_restarts: int = 0
    seconds: float = 0.0
    faults_at: list[str] = field(default_factory=list)  # each fault and the share handled then
    examples: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        counts = (self.lost, self.duplicated, self.diverged, self.wrong_letters)
        return not any(counts) and not self.missing_letters and not self.lag_at_end

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


@dataclass
class Stack:
    settings: Settings
    overrides: dict[str, str]
    kafka: KafkaService
    postgres: PostgresService
    milvus: MilvusLiteService
    logs: Path

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STYLESTREAM_")}
        values = {**self.overrides, **extra}
        return env | {f"STYLESTREAM_{k.upper()}": v for k, v in values.items()}


@contextmanager
def private_stack(base: Settings, sizes: ChaosSizes, home: Path) -> Iterator[Stack]:
    """Kafka, Postgres and a Milvus Lite server of the run's own, under ``home``."""
    milvus_port = free_port()
    overrides = {
        "data_dir": str(home),
        "model_dir": str(base.models_path.resolve()),
        "kafka_bootstrap": f"127.0.0.1:{free_port()}",
        "kafka_controller_port": str(free_port()),
        "pg_port": str(free_port()),
        "milvus_lite_port": str(milvus_port),
        "milvus_uri": f"http://127.0.0.1:{milvus_port}",
        "milvus_index": "FLAT",
        "topic_prefix": "chaos.",
        "app_id": "chaos-worker",
        "topic_partitions": str(sizes.partitions),
        "batch_within_s": "0.2",
        "retry_cap_s": "4",
        "kafka_session_timeout_s": "6",
    }
    settings = Settings(**overrides)  # type: ignore[arg-type]
    shared = KafkaService(base)
    shared.fetch_jars()  # once per machine; the run's broker uses the same jars
    kafka = KafkaService(settings, libs=shared.libs)
    postgres, milvus = PostgresService(settings), MilvusLiteService(settings)
    for service in (kafka, postgres, milvus):
        service.up()
    try:
        upgrade(settings.pg_dsn)
        ensure_topics(settings)
        yield Stack(settings, overrides, kafka, postgres, milvus, home / "logs")
    finally:
        for service in (milvus, postgres, kafka):
            service.down()


class Workers:
    def __init__(self, stack: Stack, count: int) -> None:
        self.stack = stack
        self.ports = [free_port() for _ in range(count)]
        self.procs = [self._start(i) for i in range(count)]
        self.restarts = 0

    def _start(self, i: int) -> Process:
        log = (
            self.stack.logs / f"worker-{i}-{self.restarts if hasattr(self, 'restarts') else 0}.log"
        )
        env = self.stack.env(metrics_port=str(self.ports[i]))
        return Process(["worker", "--loglevel", "warning"], log, env)

    def kill_one(self, rng: random.Random) -> int:
        i = rng.randrange(len(self.procs))
        self.procs[i].kill()
        self.restarts += 1
        time.sleep(rng.uniform(1.0, 4.0))
        self.procs[i] = self._start(i)
        return i

    def check(self) -> None:
        for proc in self.procs:
            proc.check()

    def stop(self) -> None:
        for proc in self.procs:
            proc.stop()


def _progress(stack: Stack, total: int) -> tuple[int, int]:
    """(events the workers' group has committed, events on the topic)."""
    settings = stack.settings
    admin = kafka_admin(settings, request_timeout_ms=5000)
    consumer = kafka_consumer(settings)
    try:
        topic = settings.products_topic
        parts = [TopicPartition(topic, p) for p in range(settings.topic_partitions)]
        ends = consumer.end_offsets(parts)
        committed = admin.list_group_offsets(settings.app_id).get(settings.app_id, {})
        done = sum(min(committed[p].offset, ends[p]) for p in parts if p in committed)
        return done, sum(ends.values())
    finally:
        consumer.close()
        admin.close()


def _send(stack: Stack, records: list[Record]) -> None:
    """Every record acknowledged by Kafka (retried through a broker restart), in order per key."""
    producer = kafka_producer(
        KafkaConfig.of(stack.settings),
        retries=2_000_000_000,
        linger_ms=5,
        request_timeout_ms=10_000,
    )
    try:
        futures = [producer.send(stack.settings.products_topic, key=k, value=v) for k, v in records]
        for future in futures:
            future.get(timeout=600)
    finally:
        producer.close()


def run_chaos(
    base: Settings, sizes: ChaosSizes, home: Path | None = None, seed: int = 7
) -> ChaosReport:
    started = time.monotonic()
    rng = random.Random(seed)
    records, truth = plan(sizes, seed)
    report = ChaosReport(asdict(sizes), events_sent=len(records))
    home = home or Path(tempfile.mkdtemp(prefix="stylestream-chaos-"))
    with private_stack(base, sizes, home) as stack:
        workers = Workers(stack, sizes.workers)
        try:
            sender = threading.Thread(target=_send, args=(stack, records), daemon=True)
            sender.start()
            _inflict(stack, workers, sizes, rng, report, len(records), started)
            sender.join(timeout=60)
            workers.stop()
        except BaseException:
            workers.stop()
            raise
        _judge(stack, truth, report)
    report.seconds = round(time.monotonic() - started, 1)
    return report


def _inflict(
    stack: Stack,
    workers: Workers,
    sizes: ChaosSizes,
    rng: random.Random,
    report: ChaosReport,
    total: int,
    started: float,
) -> None:
    """The faults, each at a share of the stream handled, then until every event is."""
    faults: list[tuple[float, str]] = [
        ((i + 1) / (sizes.kills + 2), "kill") for i in range(sizes.kills)
    ]
    if sizes.restart_kafka:
        faults.append((0.45, "kafka"))
    if sizes.restart_milvus:
        faults.append((0.65, "milvus"))
    faults.sort()
    stable_since: float | None = None
    while time.monotonic() - started < sizes.timeout_s:
        time.sleep(1.0)
        workers.check()
        try:
            done, end = _progress(stack, total)
        except Exception:  # Kafka restarting: ask again
            continue
        share = done / total
        while faults and share >= faults[0][0]:
            _, kind = faults.pop(0)
            report.faults_at.append(f"{kind}@{share:.2f}")
            if kind == "kill":
                workers.kill_one(rng)
                report.kills += 1
            elif kind == "kafka":
                stack.kafka.down()
                time.sleep(3)
                stack.kafka.up()
                report.kafka_restarts += 1
            else:
                stack.milvus.down()
                time.sleep(3)
                stack.milvus.up()
                report.milvus_restarts += 1
        if not faults and end >= total and done >= end:
            stable_since = stable_since or time.monotonic()
            if time.monotonic() - stable_since > 5:
                report.lag_at_end = end - done
                return
        else:
            stable_since = None
    done, end = _progress(stack, total)
    report.lag_at_end = max(0, total - done)


def _judge(stack: Stack, truth: Truth, report: ChaosReport) -> None:
    s = stack.settings
    repo = PostgresRepository.from_dsn(s.pg_dsn)
    index = MilvusVectorIndex.open(MilvusConfig(s.milvus_uri), s.milvus_collection, 1280)
    try:
        ledger = repo.ledger(sorted(truth.final))
        live = {p: v for page in repo.live_versions() for p, v in page.items()}
        indexed = {p: v for page in index.versions() for p, v in page.items()}
        rows = index.count()
    finally:
        index.close()
        repo.close()
    report.products = len(truth.final)
    report.live = sum(not deleted for _, deleted in truth.final.values())
    report.deleted = report.products - report.live
    lost, diverged = [], []
    for pid, (version, deleted) in truth.final.items():
        entry = ledger.get(pid)
        in_pg = live.get(pid)
        in_milvus = indexed.get(pid)
        expected = None if deleted else version
        ledger_right = entry is not None and (entry.version, entry.deleted) == (version, deleted)
        if not ledger_right or in_pg != expected or in_milvus != expected:
            lost.append(pid)
        if in_pg != in_milvus:
            diverged.append(pid)
    strays = sorted(set(indexed) - set(truth.final)) + sorted(set(live) - set(truth.final))
    report.lost, report.diverged = len(lost) + len(strays), len(diverged)
    extra_rows = max(0, rows - len(indexed))
    report.duplicated = extra_rows
    scan = read_letters(s, Selection())  # one per origin, as every reader (and compaction)
    report.redelivered_letters = scan.repeated
    by_key: dict[str, list[DeadLetter]] = {}
    for found in scan.letters:
        by_key.setdefault(found.letter.original_key or "", []).append(found.letter)
    wrong = [k for k in by_key if k not in truth.hostile]
    wrong += ["(not a dead letter)"] * scan.unreadable
    wrong += [
        k
        for k, kind in truth.hostile.items()
        if k in by_key and by_key[k][0].error_kind is not kind
    ]
    report.wrong_letters = len(wrong)
    report.missing_letters = sum(k not in by_key for k in truth.hostile)
    report.duplicated += sum(len(v) - 1 for v in by_key.values())
    twice = {k: sorted({d.origin for d in v}) for k, v in by_key.items()}
    report.examples = {
        "lost": lost[:10] + strays[:10],
        "diverged": diverged[:10],
        "wrong_letters": wrong[:10],
        "extra_milvus_rows": [str(extra_rows)] if extra_rows else [],
        "letters_twice": [
            f"{k}: {len(by_key[k])} letters from {origins}"
            for k, origins in twice.items()
            if len(by_key[k]) > 1
        ][:10],
    }
