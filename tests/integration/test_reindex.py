"""Train, re-index and export on real Postgres and Milvus: `train embedding` registers a head
with its lineage; `reindex` switches searches to it while searches and product writes go on,
without a failed search or a lost write; `index drop` keeps the serving collection;
`export pairs` writes what Postgres holds."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from config import assembly
from processors.products import ProductProcessor, RawEvent
from schemas.events import ProductUpsert, encode_event
from schemas.interactions import Query, TrainingPair
from stores.pairs import PairRepository
from stores.registry import ServingRegistry
from stores.writer import ProductWriter
from stylestream.cli import main
from tests.events import photo, upsert
from tests.integration.conftest import Stack

pytestmark = pytest.mark.services
N = 80


@pytest.fixture(scope="module")
def stack(make_stack: Callable[..., Stack], processor: ProductProcessor) -> Stack:
    stack = make_stack(milvus_index="FLAT", serving_refresh_s="0.2", milvus_alias="")
    stack.write(processor, [upsert(f"r{i:03d}", 1, i) for i in range(N)])
    by_category: dict[str, list[str]] = {}
    for i in range(N):
        by_category.setdefault(photo(i)[1], []).append(f"r{i:03d}")
    pairs = []
    now = datetime.now(UTC)
    for i in range(N):  # SYNTHETIC pairs: "more like this" queries, same-category clicks
        pid, category = f"r{i:03d}", photo(i)[1]
        same = [p for p in by_category[category] if p != pid]
        other = [p for c, ps in by_category.items() if c != category for p in ps]
        for j, positive in enumerate(same[:2]):
            pairs.append(
                TrainingPair(
                    pair_id=f"imp{i}:{positive}",
                    impression_id=f"imp{i}",
                    session_id=f"session-{i % 30}",
                    query=Query(kind="product", product_id=pid),
                    positive=positive,
                    position=j + 2,
                    hard_negatives=other[i % 5 : i % 5 + 1],
                    hard_negative_positions=[1],
                    random_negatives=other[i % 7 :: 9][:4],
                    interaction="interaction.click",
                    ranker_model_version="base",
                    shown_at=now,
                    clicked_at=now + timedelta(seconds=1),
                )
            )
    PairRepository(stack.repo.engine).write(pairs)
    return stack


def _cli(stack: Stack, *args: str) -> str:
    result = CliRunner().invoke(main, list(args), env=stack.env(), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_train_registers_a_head_with_metrics_and_lineage(stack: Stack) -> None:
    out = _cli(stack, "train", "embedding", "--dim", "32", "--max-epochs", "3")
    summary = json.loads(out[out.index("{") :])
    model = ServingRegistry(stack.repo.engine).model(summary["model_version"])
    assert model is not None and model.dim == 32
    assert model.lineage["pairs"] == 160 and len(model.lineage["pairs_sha256"]) == 64
    assert model.lineage["base_model_version"] == model.base_model_version
    assert model.lineage["train_pairs"] + model.lineage["held_out_pairs"] == 160
    assert set(model.metrics) >= {"held_out_base", "held_out_trained", "best_epoch"}
    assert model.params["loss"] == "infonce"
    assert model.lineage["train_coclicks"] > 0  # two clicks per impression
    calibration = model.score_calibration
    assert calibration is not None and calibration["scale"] > 0
    assert calibration["top"] == stack.settings.rerank_candidates
    card = stack.settings.models_path / "embedding-heads" / f"{model.model_version}.json"
    assert json.loads(card.read_text())["artifact_sha256"] == model.artifact_sha256


def test_reindex_switches_without_a_failed_search_or_a_lost_write(
    stack: Stack, processor: ProductProcessor
) -> None:
    registry = ServingRegistry(stack.repo.engine)
    version = registry.models()[-1]["model_version"]
    search = assembly.open_search(stack.settings, stack.repo)
    failures: list[str] = []
    served: set[str] = set()
    stop = threading.Event()

    def searching() -> None:
        while not stop.is_set():
            try:
                served.add(search.by_product("r001", k=5).model_version)
            except Exception as exc:  # counted: the point of the test
                failures.append(repr(exc))

    worker = ProductWriter(
        assembly.open_serving(stack.settings, stack.repo.engine, _base(search)), stack.repo
    )

    def writing() -> None:  # a worker's writes while the re-index runs
        for i in range(10):
            time.sleep(0.3)
            worker.write(processor.process([_raw(upsert(f"r{i:03d}", 2, i))]))
        worker.write(processor.process([_raw(upsert("late", 1, 0))]))

    threads = [threading.Thread(target=searching), threading.Thread(target=writing)]
    for t in threads:
        t.start()
    try:
        report = json.loads(_cli(stack, "reindex", "--model", version, "--no-progress"))
    finally:
        threads[1].join()
        time.sleep(1.0)  # searches after the switch too
        stop.set()
        threads[0].join()
    assert failures == []
    assert served == {stack.repo.base_versions()[0], version}
    assert report["retired"] == stack.settings.milvus_collection
    assert report["products"] == N and 0 in report["catch_up"]  # the catch-up converged
    new = registry.collections(("serving",))[0]
    assert new.collection == report["collection"] and new.model_version == version
    index = search.targets.serving().index
    rows = index.get([f"r{i:03d}" for i in range(N)] + ["late"], with_vectors=True)
    assert len(rows) == N + 1  # the product created during the re-index is there
    assert {rows[f"r{i:03d}"].version for i in range(10)} == {2}
    assert {r.model_version for r in rows.values()} == {version}
    assert len(rows["r000"].embedding) == 32  # type: ignore[arg-type]
    # the head's scores reach the rerank on the base model's scale (its calibration)
    head = registry.model(version)
    assert head is not None and head.score_calibration is not None
    cal = head.score_calibration
    query = np.asarray([rows["r001"].embedding], dtype=np.float32)
    raw = {h.product_id: h.score for h in index.search(query, N + 1)[0]}
    ranked = search.by_product("r001", k=5).ranked
    assert len(ranked) == 5
    for r in ranked:
        assert r.visual == pytest.approx(cal["shift"] + cal["scale"] * raw[r.product_id], abs=1e-4)
    listed = _cli(stack, "index", "list")
    assert f"retired   {stack.settings.milvus_collection}" in listed
    refused = CliRunner().invoke(main, ["index", "drop", new.collection], env=stack.env())
    assert refused.exit_code != 0 and "is serving" in refused.output
    search.targets.close()


def test_reindex_back_to_the_base_model_rolls_back(stack: Stack) -> None:
    registry = ServingRegistry(stack.repo.engine)
    base = stack.repo.base_versions()[0]
    report = json.loads(_cli(stack, "reindex", "--model", base, "--no-progress"))
    serving = registry.collections(("serving",))[0]
    assert (serving.collection, serving.model_version) == (report["collection"], base)
    assert serving.dim == 1280 and report["rows"] == N + 1
    search = assembly.open_search(stack.settings, stack.repo)
    result = search.by_product("r001", k=3)
    assert result.model_version == base and len(result.ranked) == 3
    search.targets.close()
    unknown = CliRunner().invoke(main, ["reindex", "--model", "nope"], env=stack.env())
    assert unknown.exit_code == 1 and "unknown embedding model 'nope'" in unknown.output


def _base(search: object) -> tuple[str, int]:
    embedder = search.processor.embedder  # type: ignore[attr-defined]
    return embedder.model_version, embedder.dim


def _raw(event: ProductUpsert) -> RawEvent:
    return RawEvent(encode_event(event))


def test_export_pairs_as_jsonl_and_parquet(stack: Stack, tmp_path: Path) -> None:
    _cli(stack, "export", "pairs", "--format", "jsonl", "--out", str(tmp_path / "p.jsonl"))
    lines = [json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert len(lines) == 160 and {x["type"] for x in lines} == {"training.pair"}
    assert all(TrainingPair.model_validate({k: v for k, v in x.items() if k != "mined_at"})
               for x in lines)  # fmt: skip
    _cli(stack, "export", "pairs", "--format", "parquet", "--out", str(tmp_path / "p.parquet"))
    assert pq.read_table(tmp_path / "p.parquet").num_rows == 160
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    _cli(stack, "export", "pairs", "--since", future, "--out", str(tmp_path / "none.jsonl"))
    assert (tmp_path / "none.jsonl").read_text() == ""
    bad = CliRunner().invoke(main, ["export", "pairs", "--since", "yesterday", "--out", "x"])
    assert bad.exit_code == 2 and "ISO 8601" in bad.output


def test_the_documented_consumer_reads_the_live_topic_once_per_pair(stack: Stack) -> None:
    rows = list(PairRepository(stack.repo.engine).since(datetime(2000, 1, 1, tzinfo=UTC)))[:3]
    producer = stack.producer()
    for row in rows + rows[:1]:  # the first one twice, as after a miner crash
        pair = TrainingPair.model_validate(
            {k: v for k, v in row.items() if k in TrainingPair.model_fields}
        )
        producer.send(
            stack.settings.training_pairs_topic,
            key=pair.impression_id.encode(),
            value=pair.model_dump_json().encode(),
        )
    producer.flush()
    producer.close()
    example = Path(__file__).resolve().parents[2] / "examples" / "consume_training_pairs.py"
    out = subprocess.run(
        [sys.executable, str(example), "--bootstrap", stack.settings.kafka_bootstrap,
         "--topic", stack.settings.training_pairs_topic, "--group", "example-test",
         "--idle-s", "10"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    printed = [json.loads(line)["pair_id"] for line in out.stdout.splitlines()]
    # once each (the repeat dropped); order holds within a partition only
    assert sorted(printed) == sorted(str(r["pair_id"]) for r in rows)
