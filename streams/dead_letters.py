"""The dead-letter topic read back and replayed (``stylestream dlq``): letters selected by kind,
product id, time or position, their originals (inline, or kept aside in Postgres) sent back to
the topic they came from, with their key, oldest first.

Replaying is idempotent downstream: a product event replayed twice is stale the second time
(the ledger), a click makes the same pair id again (the miner)."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from kafka import TopicPartition
from pydantic import ValidationError

from config.kafka import KafkaConfig, kafka_consumer, kafka_producer
from config.settings import Settings
from schemas.dead_letter import DeadLetter, ErrorKind
from stores.dead_letters import OriginalStore


@dataclass(frozen=True)
class Located:
    partition: int
    offset: int
    letter: DeadLetter

    @property
    def position(self) -> str:
        return f"{self.partition}:{self.offset}"


@dataclass(frozen=True)
class Selection:
    """Which letters; an empty field does not narrow."""

    kinds: frozenset[ErrorKind] = frozenset()
    product_ids: frozenset[str] = frozenset()
    since: datetime | None = None
    until: datetime | None = None
    positions: frozenset[str] = frozenset()  # "partition:offset" in the dead-letter topic

    @property
    def everything(self) -> bool:
        return self == Selection()

    def matches(self, found: Located) -> bool:
        letter = found.letter
        return (
            (not self.kinds or letter.error_kind in self.kinds)
            and (not self.product_ids or letter.product_id in self.product_ids)
            and (self.since is None or letter.failed_at >= self.since)
            and (self.until is None or letter.failed_at < self.until)
            and (not self.positions or found.position in self.positions)
        )


@dataclass
class Scan:
    letters: list[Located] = field(default_factory=list)
    unreadable: int = 0  # records on the topic that are no dead letter of ours
    repeated: int = 0  # letters sent again for the same origin (a redelivered batch)


def read_letters(settings: Settings, selection: Selection, poll_ms: int = 1000) -> Scan:
    """Every selected letter on the dead-letter topic, from its start to its current end."""
    consumer = kafka_consumer(settings, enable_auto_commit=False)
    scan = Scan()
    seen: set[str] = set()
    try:
        topic = settings.dead_letter_topic
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        ends = consumer.end_offsets(parts)
        while any(consumer.position(p) < ends[p] for p in parts):
            for records in consumer.poll(timeout_ms=poll_ms).values():
                for record in records:
                    found = _located(record)
                    if found is None:
                        scan.unreadable += 1
                    elif found.letter.origin in seen:
                        scan.repeated += 1
                    else:
                        seen.add(found.letter.origin)
                        if selection.matches(found):
                            scan.letters.append(found)
    finally:
        consumer.close()
    scan.letters.sort(key=lambda f: (f.letter.failed_at, f.partition, f.offset))
    return scan


def _located(record: object) -> Located | None:
    try:
        letter = DeadLetter.model_validate_json(record.value)  # type: ignore[attr-defined]
    except (ValidationError, ValueError, TypeError):
        return None
    return Located(record.partition, record.offset, letter)  # type: ignore[attr-defined]


def kinds_count(letters: Iterable[Located]) -> dict[str, int]:
    return dict(Counter(f.letter.error_kind.value for f in letters).most_common())


@dataclass
class ReplayReport:
    sent: list[str] = field(default_factory=list)  # positions
    skipped: dict[str, str] = field(default_factory=dict)  # position -> why


def original_of(letter: DeadLetter, originals: OriginalStore) -> bytes | None:
    """The letter's original bytes, checked against its SHA-256; None when lost."""
    data = originals.get(letter.original_sha256 or "") if letter.original_stored else None
    if not letter.original_stored:
        data = letter.original()
    if data is None:
        return None
    if letter.original_sha256 and hashlib.sha256(data).hexdigest() != letter.original_sha256:
        return None
    return data


def replay(
    settings: Settings,
    letters: Iterable[Located],
    originals: OriginalStore,
    dry_run: bool = False,
) -> ReplayReport:
    """Each letter's original back to its topic (a project input topic only), oldest first;
    returns once Kafka has acknowledged every one."""
    inputs = {
        settings.products_topic,
        settings.outfits_topic,
        settings.impressions_topic,
        settings.interactions_topic,
    }
    report = ReplayReport()
    chosen: list[tuple[Located, bytes]] = []
    for found in letters:
        letter = found.letter
        data = original_of(letter, originals)
        if letter.topic not in inputs:
            report.skipped[found.position] = f"not a StyleStream input topic: {letter.topic!r}"
        elif data is None:
            report.skipped[found.position] = "its original is lost or does not match its hash"
        else:
            chosen.append((found, data))
    if dry_run or not chosen:
        report.sent = [found.position for found, _ in chosen]
        return report
    producer = kafka_producer(KafkaConfig.of(settings))
    try:
        for found, data in chosen:
            key = found.letter.original_key
            sent = producer.send(found.letter.topic, key=key.encode() if key else None, value=data)
            sent.get(timeout=60)  # acknowledged, in order, before the next
            report.sent.append(found.position)
    finally:
        producer.close()
    return report
