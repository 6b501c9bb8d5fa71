"""Prometheus metrics of a worker, on a registry of its own (no module-level globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.consumed = Counter(
            "stylestream_events_consumed", "Product events read from Kafka", registry=r
        )
        self.indexed = Counter(
            "stylestream_products_indexed",
            "Product versions written to Milvus and Postgres",
            registry=r,
        )
        self.deleted = Counter(
            "stylestream_products_deleted", "Products removed from both stores", registry=r
        )
        self.stale = Counter(
            "stylestream_events_stale", "Redelivered or out-of-date events ignored", registry=r
        )
        self.dead_lettered = Counter(
            "stylestream_events_dead_lettered",
            "Events sent to the dead-letter topic",
            ["error_kind"],
            registry=r,
        )
        self.batch_seconds = Histogram(
            "stylestream_batch_processing_seconds",
            "Time to process and write one batch",
            registry=r,
        )
        self.consumer_lag = Gauge(
            "stylestream_consumer_lag_events",
            "Product events on Kafka not yet handled by this worker, by partition",
            ["partition"],
            registry=r,
        )
        self.outfits = Counter(
            "stylestream_outfit_events",
            "Outfit events by outcome: applied, deleted, stale, dead_lettered",
            ["outcome"],
            registry=r,
        )
        self.lag_seconds = Histogram(
            "stylestream_event_to_searchable_seconds",
            "From the producer's send time to searchable in Milvus",
            buckets=LAG_BUCKETS,
            registry=r,
        )


class MinerMetrics:
    """The click miner's counters: every event's outcome (paired, duplicate, late, ...)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.outcomes = Counter(
            "stylestream_mining_events",
            "Impressions and interactions by outcome",
            ["outcome"],
            registry=r,
        )
        self.pairs_written = Counter(
            "stylestream_training_pairs_written", "New training pairs stored", registry=r
        )
        self.orphaned = Counter(
            "stylestream_mining_orphaned_clicks",
            "Clicks whose impression never arrived within the window",
            registry=r,
        )
        self.dead_lettered = Counter(
            "stylestream_mining_dead_lettered",
            "Interaction events sent to the dead-letter topic",
            ["error_kind"],
            registry=r,
        )
