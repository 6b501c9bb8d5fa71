"""The chaos run of bench/chaos.py at CI size: 3 workers on a 6-partition topic, 5,000
product events (upserts, redeliveries, stale versions, deletes, hostile events), 5 workers
SIGKILLed and restarted, Kafka and Milvus each restarted once; then nothing lost, duplicated
or diverged, every hostile event dead-lettered once with its reason, and no good one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.chaos import ChaosSizes, run_chaos
from config.settings import Settings

pytestmark = pytest.mark.services


def test_nothing_is_lost_duplicated_or_diverged_through_crashes_and_restarts(
    running_services: Settings, model_path: Path, attribute_models: object, tmp_path: Path
) -> None:
    sizes = ChaosSizes()
    report = run_chaos(running_services, sizes, home=tmp_path / "chaos")
    summary = json.dumps(report.as_dict(), indent=2)
    assert report.kills == sizes.kills and report.kafka_restarts == report.milvus_restarts == 1
    assert report.events_sent == sizes.events and report.live > 0 and report.deleted > 0
    assert report.ok, summary
    # the faults landed mid-stream, not after it was all handled
    assert all(float(f.split("@")[1]) < 0.95 for f in report.faults_at), summary
