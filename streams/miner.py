"""``stylestream mine``: the click-mining worker (scale out up to the interaction partitions)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import faust

from config.settings import Settings
from processors.clicks import ClickMiner, ListSampler, MiningConfig
from stores.base import MetadataRepository
from stores.dead_letters import PostgresOriginals
from stores.joins import PostgresJoins
from stores.postgres import PostgresRepository
from streams.faults import Backoff, Dependencies, FaultMetrics, Heartbeat
from streams.health import serve_probes
from streams.metrics import MinerMetrics
from streams.mining import create_miner_app
from streams.topics import ensure_topics

log = logging.getLogger(__name__)
MAX_NEGATIVE_POOL = 200_000


class CatalogueSampler:
    """Random negatives from the catalogue in Postgres, re-read every ``refresh_s`` (every
    second while it is empty: a miner started before the catalogue must not mine pairs without
    random negatives for its whole life)."""

    def __init__(
        self,
        repo: MetadataRepository,
        refresh_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.repo = repo
        self.refresh_s = refresh_s
        self.clock = clock
        self._sampler = ListSampler([])
        self._read_at = float("-inf")

    def _reload(self) -> None:
        self._sampler = ListSampler(self.repo.product_ids(MAX_NEGATIVE_POOL))
        self._read_at = self.clock()

    def sample(self, seed: int, n: int, exclude: set[str]) -> list[str]:
        age = self.clock() - self._read_at
        if age >= self.refresh_s or (not self._sampler.product_ids and age >= 1.0):
            try:
                self._reload()
            except Exception as exc:  # keep the last pool: a pair is still worth mining
                log.warning("random negatives pool not refreshed: %s", exc)
        return self._sampler.sample(seed, n, exclude)


def run_miner(settings: Settings, loglevel: str = "info") -> None:
    ensure_topics(settings)
    repo = PostgresRepository.from_dsn(settings.pg_dsn)
    sampler = CatalogueSampler(repo, settings.negatives_refresh_s)
    miner = ClickMiner(sampler, MiningConfig(settings.click_window_s, settings.random_negatives))
    metrics = MinerMetrics()
    dependencies = Dependencies(
        {"postgres": repo.ping},
        FaultMetrics(metrics.registry),
        Heartbeat(),
        Backoff(settings.retry_first_s, settings.retry_cap_s),
    )
    serve_probes(
        settings.miner_metrics_port,
        settings.metrics_host,
        metrics.registry,
        dependencies,
        settings.worker_stall_s,
    )
    joins = PostgresJoins(repo.engine)
    app = create_miner_app(
        settings, miner, joins, metrics, PostgresOriginals(repo.engine), dependencies
    )
    log.info("click miner starting")
    try:
        faust.Worker(app, loglevel=loglevel).execute_from_commandline()
    finally:
        repo.close()
