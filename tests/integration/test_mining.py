"""The click miner as a real `stylestream mine` process on real Kafka and Postgres: clicks
reported through the API become training pairs, once each, across a SIGKILL restart."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from kafka import TopicPartition

from bench.processes import Process
from bench.simulator import ShopperModel, SimulatedQuery, simulate
from bench.text_shopper import intents, simulate_text
from config.kafka import kafka_admin, kafka_consumer
from deploy.local.process import free_port
from processors.products import ProductProcessor
from stores.pair_files import write_pairs
from stores.pairs import PairRepository
from stylestream.cli import main
from tests.events import upsert
from tests.integration.conftest import Stack, wait_for
from training.datasets import CLASSES, load_split

pytestmark = pytest.mark.services


def start_miner(stack: Stack, log_dir: Path) -> Process:
    """A real `stylestream mine` process."""
    log = log_dir / f"miner-{uuid.uuid4().hex[:6]}.log"
    return Process(["mine", "--loglevel", "warning"], log, stack.env())


@pytest.fixture(scope="module")
def stack(make_stack: Callable[..., Stack], processor: ProductProcessor) -> Stack:
    stack = make_stack(milvus_index="FLAT", miner_metrics_port=str(free_port()))
    events = [upsert(f"m{i:03d}", 1, i) for i in range(60)]
    stack.write(processor, events)
    return stack


def _queries() -> list[SimulatedQuery]:
    images, labels = load_split("t10k")
    return [SimulatedQuery(images[i], CLASSES[int(labels[i])]) for i in range(60)]


def _outcome(stack: Stack, outcome: str) -> float:
    url = f"http://127.0.0.1:{stack.settings.miner_metrics_port}/metrics"
    try:
        text = urllib.request.urlopen(url, timeout=2).read().decode()
    except OSError:
        return 0.0
    for line in text.splitlines():
        if line.startswith(f'stylestream_mining_events_total{{outcome="{outcome}"}}'):
            return float(line.split()[-1])
    return 0.0


def _stored(stack: Stack) -> list[dict[str, object]]:
    return list(PairRepository(stack.repo.engine).since(datetime(2000, 1, 1, tzinfo=UTC)))


def _records(stack: Stack, topic: str) -> list[tuple[int, int, bytes | None, bytes]]:
    """(partition, offset, key, value) of every record on ``topic``."""
    consumer = kafka_consumer(stack.settings)
    parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    ends = consumer.end_offsets(parts)
    out: list[tuple[int, int, bytes | None, bytes]] = []
    while any(consumer.position(tp) < ends[tp] for tp in parts):
        for records in consumer.poll(timeout_ms=500).values():
            out += [(r.partition, r.offset, r.key, r.value) for r in records]
    consumer.close()
    return out


def _why_missing(stack: Stack, clicks: set[tuple[str, str]], miner: Process) -> str:
    """What became of the clicks with no pair: on the topics or not, the miner's outcomes, its
    committed offsets and its log."""
    settings = stack.settings
    missing = clicks - {(str(r["impression_id"]), str(r["positive"])) for r in _stored(stack)}
    impressions = {json.loads(v)["impression_id"]: (p, o) for p, o, _, v in
                   _records(stack, settings.impressions_topic)}  # fmt: skip
    interactions = {(json.loads(v)["impression_id"], json.loads(v)["product_id"]): (p, o)
                    for p, o, _, v in _records(stack, settings.interactions_topic)}  # fmt: skip
    lines = [f"{len(missing)} of {len(clicks)} clicks have no pair"]
    for imp, pid in sorted(missing):
        lines.append(f"  {imp} {pid}: impression at {impressions.get(imp)}, "
                     f"click at {interactions.get((imp, pid))}")  # fmt: skip
    outcomes = {
        o: _outcome(stack, o)
        for o in (
            "paired",
            "pending",
            "duplicate",
            "impression",
            "duplicate_impression",
            "late",
            "not_shown",
        )
    }
    lines.append(f"miner outcomes since its start: {outcomes}")
    admin = kafka_admin(settings)
    committed = admin.list_group_offsets(settings.miner_app_id)[settings.miner_app_id]
    admin.close()
    lines.append(
        f"committed: {sorted((tp.topic, tp.partition, m.offset) for tp, m in committed.items())}"
    )
    lines.append("miner log:\n" + miner.tail(6000))
    return "\n".join(lines)


def _wait_for_pairs(
    stack: Stack, clicks: set[tuple[str, str]], miner: Process, timeout: float
) -> None:
    try:
        wait_for(lambda: len(_stored(stack)) >= len(clicks), timeout=timeout)
    except AssertionError as exc:
        raise AssertionError(_why_missing(stack, clicks, miner)) from exc


def _probe(stack: Stack, path: str) -> int:
    url = f"http://127.0.0.1:{stack.settings.miner_metrics_port}{path}"
    try:
        return int(urllib.request.urlopen(url, timeout=2).status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_clicks_become_pairs_once_each_across_kills(
    stack: Stack, client: TestClient, tmp_path: Path
) -> None:
    model = ShopperModel(k=10, noise=0.05)
    first = simulate(client, _queries(), sessions=4, queries_per_session=5, seed=1, model=model)
    miner = start_miner(stack, tmp_path)
    try:
        clicks = {(imp, pid) for log in first for imp, pid, _, _ in log.clicks}
        assert len(clicks) >= 5
        _wait_for_pairs(stack, clicks, miner, timeout=120)
        assert _probe(stack, "/healthz") == 200 and _probe(stack, "/readyz") == 200
        miner.kill()  # SIGKILL: no clean shutdown, offsets maybe uncommitted
        mined_before = len(clicks)
        second = simulate(client, _queries(), sessions=3, queries_per_session=5, seed=2,
                          model=model)  # fmt: skip
        # a click mined before the kill, reported again: a duplicate, never a second pair
        imp, pid = sorted(clicks)[0]
        session = next(log.session_id for log in first if imp in log.impressions)
        clicks |= {(i, p) for log in second for i, p, _, _ in log.clicks}
        again = client.post(
            "/v1/interactions",
            json={"impression_id": imp, "product_id": pid},
            headers={"X-Session-Id": session},
        )
        assert again.status_code == 202
        # killed again mid-stream, as soon as it has mined one more pair
        miner = start_miner(stack, tmp_path)
        wait_for(lambda: len(_stored(stack)) > mined_before, timeout=150)
        miner.kill()
        miner = start_miner(stack, tmp_path)
        _wait_for_pairs(stack, clicks, miner, timeout=150)
        # the repeated click met its impression's join state in Postgres: a duplicate
        # (without that state it would wait, "pending", for an impression never read again)
        wait_for(lambda: _outcome(stack, "duplicate") >= 1, timeout=60)
        producer = stack.producer()  # bad events are dead-lettered with their reason
        producer.send(stack.settings.interactions_topic, key=b"bad", value=b"{not json")
        producer.send(stack.settings.interactions_topic, key=b"bad", value=b'{"schema_version": 1}')
        producer.flush()
        producer.close()
        letters = stack.dead_letters(2)
        assert sorted(d.error_kind for d in letters) == ["not_json", "schema_violation"]
        assert all(d.topic == stack.settings.interactions_topic for d in letters)
    finally:
        miner.stop()
    rows = _stored(stack)
    assert sorted(str(r["pair_id"]) for r in rows) == sorted(f"{i}:{p}" for i, p in clicks)
    for r in rows:
        assert r["positive"] not in r["hard_negatives"]  # type: ignore[operator]
        assert len(r["random_negatives"]) == stack.settings.random_negatives  # type: ignore[arg-type]
        assert r["query"]["kind"] == "image"  # type: ignore[index]
    # every stored pair reached the training-pairs topic; a repeat there is identical
    sent: dict[str, set[bytes]] = {}
    for _, _, _, value in _records(stack, stack.settings.training_pairs_topic):
        sent.setdefault(json.loads(value)["pair_id"], set()).add(value)
    assert set(sent) == {str(r["pair_id"]) for r in rows}
    assert all(len(values) == 1 for values in sent.values())


def test_clicks_on_text_results_become_pairs_carrying_the_words(
    stack: Stack, client: TestClient, tmp_path: Path
) -> None:
    search = client.post(
        "/v1/search/text", json={"terms": {"ankle boot": 1, "sandal": -1}, "k": 5}
    ).json()
    shown = [r["product_id"] for r in search["results"]]
    assert len(shown) >= 3
    r = client.post(
        "/v1/interactions",
        json={"impression_id": search["impression_id"], "product_id": shown[2], "position": 3},
        headers={"X-Session-Id": search["session_id"]},
    )
    assert r.status_code == 202, r.text
    # SIMULATED text shoppers (category intents over this catalogue) click some more
    truth = {
        p: frozenset({f"category.{row['category']}"})
        for p, row in stack.repo.get_products([f"m{i:03d}" for i in range(60)]).items()
    }
    logs = simulate_text(client, intents(truth, 60, seed=8), truth, sessions=12, per_session=5,
                         seed=9, model=ShopperModel(k=10, noise=0.1))  # fmt: skip
    clicks = {(imp, pid) for log in logs for imp, pid, _, _ in log.clicks}
    clicks.add((search["impression_id"], shown[2]))
    assert len(clicks) >= 6
    miner = start_miner(stack, tmp_path)
    try:
        want = f"{search['impression_id']}:{shown[2]}"
        try:
            wait_for(
                lambda: (
                    {f"{i}:{p}" for i, p in clicks} <= {str(p["pair_id"]) for p in _stored(stack)}
                ),
                timeout=120,
            )
        except AssertionError as exc:
            raise AssertionError(_why_missing(stack, clicks, miner)) from exc
    finally:
        miner.stop()
    pair = next(p for p in _stored(stack) if p["pair_id"] == want)
    assert pair["query"] == {
        "kind": "text",
        "text": "ankle boot",
        "terms": {"ankle boot": 1.0, "sandal": -1.0},
        "filters": {},
    }
    assert pair["hard_negatives"] == shown[:2] and pair["ranker_model_version"] == "lexical-v1"
    out = tmp_path / "pairs.jsonl"
    write_pairs(_stored(stack), out, "jsonl")
    exported = [json.loads(line) for line in out.read_text().splitlines()]
    assert [p["query"]["text"] for p in exported if p["pair_id"] == want] == ["ankle boot"]
    # a text model trained on exactly these pairs, judged on held-out sessions, exported
    models = tmp_path / "text-models"
    result = CliRunner().invoke(
        main,
        ["train", "text", "--kind", "gru", "--epochs", "2", "--held-out-percent", "30",
         "--out", str(models)],
        env={f"STYLESTREAM_{k.upper()}": v for k, v in stack.overrides.items()},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["pairs"]["text"] == len(clicks)  # image pairs of other tests are skipped
    assert report["pairs"]["trained_on"] + report["held_out"]["clicks_judged"] <= len(clicks)
    for name in report["files"]:
        assert (models / name).stat().st_size > 0
