"""``stylestream mine``: the click-mining worker (scale out up to the interaction partitions)."""

from __future__ import annotations

import logging

import faust
from sqlalchemy import select

from processors.clicks import ClickMiner, ListSampler, MiningConfig
from schemas.tables import products
from stores.pairs import PairRepository
from stores.postgres import make_engine
from streams.metrics import MinerMetrics
from streams.mining import create_miner_app
from streams.topics import ensure_topics
from stylestream.settings import Settings

log = logging.getLogger(__name__)
MAX_NEGATIVE_POOL = 200_000


def run_miner(settings: Settings, loglevel: str = "info") -> None:
    ensure_topics(settings)
    engine = make_engine(settings.pg_dsn)
    with engine.connect() as conn:  # the random negatives' pool: the catalogue at start
        ids = [r[0] for r in conn.execute(select(products.c.product_id).limit(MAX_NEGATIVE_POOL))]
    miner = ClickMiner(
        ListSampler(ids), MiningConfig(settings.click_window_s, settings.random_negatives)
    )
    metrics = MinerMetrics()
    metrics.serve(settings.miner_metrics_port, settings.metrics_host)
    app = create_miner_app(settings, miner, PairRepository(engine), metrics)
    log.info("click miner starting: %d products for random negatives", len(ids))
    try:
        faust.Worker(app, loglevel=loglevel).execute_from_commandline()
    finally:
        engine.dispose()
