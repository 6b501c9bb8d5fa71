"""Create the project's topics up front (Faust does not create source/sink topics)."""

from __future__ import annotations

import contextlib

from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import TopicAlreadyExistsError

from config.kafka import kafka_admin
from config.settings import Settings


def topic_specs(settings: Settings) -> dict[str, int]:
    return {
        settings.products_topic: settings.topic_partitions,
        settings.dead_letter_topic: max(1, settings.topic_partitions // 2),
        # the same count for both: the click miner joins them partition by partition
        settings.impressions_topic: settings.topic_partitions,
        settings.interactions_topic: settings.topic_partitions,
        settings.training_pairs_topic: settings.topic_partitions,
        settings.outfits_topic: settings.topic_partitions,
    }


def topic_configs(settings: Settings) -> dict[str, dict[str, str]]:
    """Topic settings the project owns: the dead-letter topic keeps letters for a set time
    (not the broker's default), long enough to inspect and replay them, and compacts them by
    key (a letter's origin: one letter per failed record, however often it was sent)."""
    retention_ms = int(settings.dead_letter_retention_days * 86_400_000)
    dead_letters = {"retention.ms": str(retention_ms), "cleanup.policy": "compact,delete"}
    return {settings.dead_letter_topic: dead_letters}


def ensure_topics(settings: Settings) -> dict[str, int]:
    """Create missing topics and set the configs of topic_configs; returns every project topic
    with its partition count."""
    admin = kafka_admin(settings, request_timeout_ms=15000)
    configs = topic_configs(settings)
    try:
        existing = set(admin.list_topics())
        missing = [
            NewTopic(
                name,
                num_partitions=parts,
                replication_factor=settings.topic_replication,
                topic_configs=configs.get(name, {}),
            )
            for name, parts in topic_specs(settings).items()
            if name not in existing
        ]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker won the race
                admin.create_topics(missing)
        admin.alter_configs(  # topics made before, or with other values
            [
                ConfigResource(ConfigResourceType.TOPIC, name, configs=c)
                for name, c in configs.items()
            ]
        )
        described = admin.describe_topics(list(topic_specs(settings)))
        return {t["name"]: len(t["partitions"]) for t in described}
    finally:
        admin.close()
