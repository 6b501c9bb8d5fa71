"""Text models on real Postgres, Milvus and Kafka: `train text` registers a model with its
lineage; `reindex --text` builds its product text vectors and switches text queries from words
alone to the hybrid while searches and product writes go on, without a failed search or a lost
write; the API explains both sides; a real worker writes new products' text vectors; the
reconcile repairs a text collection."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from config import assembly
from processors.products import ProductProcessor, RawEvent
from schemas.events import encode_event
from schemas.interactions import Query, TrainingPair
from schemas.tables import text_collections
from search.text import LEXICAL_MODEL, TextQuery
from stores.pairs import PairRepository
from stores.registry import ServingRegistry
from stores.rows import tower_inputs
from stores.text_serving import load_text_model
from stores.writer import ProductWriter
from stylestream.cli import main
from tests.events import photo, upsert
from tests.integration.conftest import Stack, Worker, wait_for

pytestmark = pytest.mark.services
N = 60
WORDS = {  # SYNTHETIC text queries: a shopper's words for each Fashion-MNIST category
    "t-shirt": "tee top",
    "trouser": "pants",
    "pullover": "jumper",
    "dress": "frock",
    "coat": "overcoat",
    "sandal": "open shoe",
    "shirt": "button shirt",
    "sneaker": "trainer shoe",
    "bag": "handbag",
    "ankle-boot": "short boot",
}


@pytest.fixture(scope="module")
def stack(make_stack: Callable[..., Stack], processor: ProductProcessor) -> Stack:
    stack = make_stack(milvus_index="FLAT", serving_refresh_s="0.2")
    stack.write(processor, [upsert(f"t{i:03d}", 1, i) for i in range(N)])
    ids = [f"t{i:03d}" for i in range(N)]
    category = {pid: photo(i)[1] for i, pid in enumerate(ids)}
    now = datetime.now(UTC)
    pairs = []
    for n in range(240):  # SYNTHETIC clicks: the clicked product is of the words' category
        pid = ids[n % N]
        others = [p for p in ids if category[p] != category[pid]]
        pairs.append(
            TrainingPair(
                pair_id=f"imp{n}:{pid}",
                impression_id=f"imp{n}",
                session_id=f"session-{n % 40}",
                query=Query(kind="text", text=WORDS.get(category[pid], category[pid])),
                positive=pid,
                position=2,
                hard_negatives=others[n % 7 : n % 7 + 1],
                hard_negative_positions=[1],
                random_negatives=others[n % 5 :: 11][:4],
                interaction="interaction.click",
                ranker_model_version=LEXICAL_MODEL,
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


def _json(out: str) -> dict:  # type: ignore[type-arg]
    return json.loads(out[out.index("{") :])  # type: ignore[no-any-return]


def test_a_text_model_is_registered_reindexed_and_served_without_downtime(
    stack: Stack, processor: ProductProcessor, client: TestClient, tmp_path: Path
) -> None:
    report = _json(_cli(stack, "train", "text", "--kind", "gru", "--epochs", "2",
                        "--out", str(tmp_path)))  # fmt: skip
    version = report["registered"]
    registry = ServingRegistry(stack.repo.engine, text_collections)
    model = registry.text_model(version)
    base = assembly.base_model(stack.settings)[0]
    assert model is not None and model.base_model_version == base and model.kind == "gru"
    assert model.lineage["pairs"]["text"] == 240 and model.lineage["products"] == N
    assert model.metrics["held_out"]["clicks_judged"] > 0
    search = assembly.open_text_search(stack.settings, stack.repo)
    query = TextQuery.parse("short boot", k=5)
    assert search.search(query).model_version == LEXICAL_MODEL  # nothing serves text yet
    failures: list[str] = []
    served: set[str] = set()
    stop = threading.Event()

    def searching() -> None:
        while not stop.is_set():
            try:
                served.add(search.search(query).model_version)
            except Exception as exc:  # counted: the point of the test
                failures.append(repr(exc))

    writer = ProductWriter(
        assembly.open_serving(
            stack.settings, stack.repo.engine, assembly.base_model(stack.settings)
        ),
        stack.repo,
        text_targets=assembly.open_text_serving(stack.settings, stack.repo.engine, base),
    )

    def writing() -> None:  # a worker's writes while the re-index runs
        for i in range(8):
            time.sleep(0.3)
            writer.write(processor.process([RawEvent(encode_event(upsert(f"t{i:03d}", 2, i)))]))
        writer.write(processor.process([RawEvent(encode_event(upsert("late", 1, 3)))]))

    threads = [threading.Thread(target=searching), threading.Thread(target=writing)]
    for t in threads:
        t.start()
    try:
        rebuilt = _json(_cli(stack, "reindex", "--text", "--model", version, "--no-progress"))
    finally:
        threads[1].join()
        time.sleep(1.0)  # searches after the switch too
        stop.set()
        threads[0].join()
    assert failures == []
    assert served == {LEXICAL_MODEL, f"hybrid:{version}"}
    assert rebuilt["retired"] is None and rebuilt["products"] == N and 0 in rebuilt["catch_up"]
    serving = registry.collections(("serving",))[0]
    assert serving.collection == rebuilt["collection"] and serving.model_version == version
    assert rebuilt["collection"].startswith(f"{stack.settings.milvus_collection}_text__")
    # every product, the one created during the build too, at its latest version, embedded as
    # the model's product tower embeds what Postgres holds of it
    target = search.text_targets.serving()  # type: ignore[union-attr]
    assert target is not None
    ids = [f"t{i:03d}" for i in range(N)] + ["late"]
    rows = target.index.get(ids, with_vectors=True)
    assert set(rows) == set(ids) and {rows[f"t{i:03d}"].version for i in range(8)} == {2}
    stored = stack.repo.get_products(["t000", "t030", "late"])
    attributes = stack.repo.get_attributes(list(stored))
    inputs = [{**stored[p], "attributes": attributes.get(p, [])} for p in stored]
    encoder = load_text_model(registry, version, base)
    expected = encoder.products(*tower_inputs(inputs))
    for pid, vector in zip(stored, expected, strict=True):
        assert np.allclose(rows[pid].embedding, vector, atol=1e-4)  # type: ignore[arg-type]
    # the API answers with both sides and explains them
    body = wait_for(
        lambda: (
            (
                r := client.post(
                    "/v1/search/text", json={"query": "short boot", "k": 8, "explain": True}
                ).json()
            )["model_version"]
            == f"hybrid:{version}"
            and r
        ),
        timeout=10,
    )
    parts = [r["text"] for r in body["results"]]
    assert parts and all(p["fusion"] == "rrf" for p in parts)
    assert any(p["dense_rank"] is not None and p["dense"] is not None for p in parts)
    for r in body["results"]:
        ranks = [r["text"]["lexical_rank"], r["text"]["dense_rank"]]
        assert r["score"] == pytest.approx(sum(1 / (60 + x) for x in ranks if x), abs=1e-5)
    # the text pointer is listed apart, and neither drop takes the serving text collection
    assert f"serving   {serving.collection}" in _cli(stack, "index", "list", "--text")
    for extra in (["--text"], []):
        refused = CliRunner().invoke(
            main, ["index", "drop", serving.collection, *extra], env=stack.env()
        )
        assert refused.exit_code != 0
        assert ("is serving" if extra else "not a collection of index_collections") in (
            refused.output
        )
    search.text_targets.close()  # type: ignore[union-attr]
    search.targets.close()


def test_a_worker_writes_new_products_text_vectors(
    stack: Stack, start_worker: Callable[[Stack], Worker]
) -> None:
    start_worker(stack)
    producer = stack.producer()
    producer.send(
        stack.settings.products_topic,
        key=b"fresh",
        value=encode_event(upsert("fresh", 1, 9, title="Black leather ankle boot")),
    )
    producer.flush()
    producer.close()
    targets = assembly.open_text_serving(
        stack.settings, stack.repo.engine, assembly.base_model(stack.settings)[0]
    )
    target = targets.serving()
    assert target is not None
    row = wait_for(lambda: target.index.get(["fresh"]).get("fresh"), timeout=90)
    assert row.version == 1 and row.model_version == target.model_version
    # a text vector lost (an old bug, a restored backup): `stylestream reconcile` puts it back
    target.index.delete(["t010"])
    target.index.flush()
    result = CliRunner().invoke(main, ["reconcile"], env=stack.env(), catch_exceptions=False)
    drifts = {d["collection"]: d for d in json.loads(result.output)}
    assert drifts[target.collection]["missing"] == ["t010"]
    assert drifts[target.collection]["repaired"] == 1
    assert target.index.get(["t010"])["t010"].version == 1
    targets.close()
    # a bad text model rolled back to words alone, at once, the collection kept
    assert target.collection in _cli(stack, "index", "words-alone")
    search = assembly.open_text_search(stack.settings, stack.repo)
    assert search.search(TextQuery.parse("short boot")).model_version == LEXICAL_MODEL
    assert f"retired   {target.collection}" in _cli(stack, "index", "list", "--text")
    search.targets.close()
