"""``stylestream bench text``: text queries through the API at light load, by words alone and
by the hybrid (a MiniLM text model's product text vectors fused with the words), against the
store's own full-text query in the same run (the floor: what Postgres alone takes).

Queries are SIMULATED shoppers' wording (bench/wording.py) of random intents, training and
held-out wording alike, a tenth with a ``-word`` exclusion. The goal (issue 16): p99 <= 50 ms
at light load (one client). The hybrid's model is trained here on SIMULATED pairs (each
product's category and attributes in training wording): its cost, not its quality, is what
this measures (`stylestream eval text` judges quality), then registered and indexed with
`reindex --text` as in production; the collection it replaces is dropped.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench.api_load import run_requests
from bench.processes import Process
from bench.search import ensure_indexed
from bench.serve import api_ready
from bench.wording import MODIFIERS, NOUNS, express
from config import assembly
from config.settings import Settings
from deploy.local.process import free_port, wait_until
from processors.text import TextQueryError, parse_terms
from schemas.tables import text_collections
from stores.milvus import connect
from stores.postgres import PostgresRepository, make_engine
from stores.registry import ServingRegistry, TextModel
from training.text_export import export_text_model
from training.text_model import ProductTable, TextPairs, TextTrainConfig, train_text_model

GOAL_P99_MS = 50.0


@dataclass(frozen=True)
class TextServeSizes:
    concurrencies: tuple[int, ...] = (1, 2, 4)
    seconds: float = 20.0
    queries: int = 300
    products: int = 2000  # indexed first when the index is empty
    seed: int = 0


def text_queries(n: int, seed: int) -> list[str]:
    """SIMULATED wording of random intents (a category and up to two facts)."""
    rng = np.random.default_rng([seed, 31])
    nouns, mods = sorted(NOUNS), sorted(MODIFIERS)
    out = []
    for i in range(n):
        picked = rng.choice(len(mods), int(rng.integers(0, 3)), replace=False)
        intent = (nouns[int(rng.integers(len(nouns)))], *(mods[int(j)] for j in picked))
        text = express(intent, "test" if i % 2 else "train", rng)
        if rng.random() < 0.1:
            text += " -" + str(rng.choice(["leather", "heel", "striped", "black"]))
        out.append(text[:256])
    return out


def _percentiles(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms or [0.0])
    return {
        "p50_ms": round(float(np.percentile(a, 50)), 2),
        "p99_ms": round(float(np.percentile(a, 99)), 2),
        "mean_ms": round(float(a.mean()), 2),
    }


def store_alone(settings: Settings, queries: list[str], k: int = 10) -> dict[str, Any]:
    """Postgres's full-text query by itself, one at a time, each query twice (warm)."""
    repo = PostgresRepository.from_dsn(settings.pg_dsn)
    timings: list[float] = []
    matched = 0
    try:
        for text in queries * 2:
            try:
                terms = parse_terms(text)
            except TextQueryError:
                continue
            started = time.perf_counter()
            found = repo.text_search(terms, k)
            timings.append((time.perf_counter() - started) * 1000)
            matched += bool(found)
    finally:
        repo.close()
    return {"queries": len(timings), "with_results": matched, **_percentiles(timings)}


def _simulated_pairs(table: ProductTable, rows: list[dict[str, Any]], seed: int) -> TextPairs:
    """Each product's category and up to two of its attributes, in training wording."""
    rng = np.random.default_rng([seed, 37])
    mined: list[tuple[str, str, list[str]]] = []
    for r in rows:
        noun = f"category.{r['category']}"
        if noun not in NOUNS:
            continue
        mods = [a["attribute_key"] for a in r["attributes"] if a["attribute_key"] in MODIFIERS]
        mined.append((express((noun, *mods[:2]), "train", rng), str(r["product_id"]), []))
    return TextPairs.from_mined(mined, table)


def serve_text_model(settings: Settings, log: Callable[[str], None], seed: int = 0) -> str:
    """A MiniLM text model trained on SIMULATED pairs over the catalogue in Postgres,
    registered and indexed (`reindex --text`); returns its version."""
    repo = PostgresRepository.from_dsn(settings.pg_dsn)
    try:
        base = assembly.base_model(settings)[0]
        rows = [r for batch in repo.product_batches() for r in batch if r["model_version"] == base]
        attributes = repo.get_attributes([r["product_id"] for r in rows])
        rows = [{**r, "attributes": attributes.get(r["product_id"], [])} for r in rows]
        table = ProductTable.from_rows(rows)
        pairs = _simulated_pairs(table, rows, seed)
        log(f"[text] training a MiniLM text model on {len(pairs)} SIMULATED pairs")
        config = TextTrainConfig(kind="minilm", epochs=2, seed=seed)
        model = train_text_model(pairs, table, config)
        artifacts = export_text_model(model, table.texts[:4], table.dense[:4])
        digest = TextModel.digest(artifacts.query, artifacts.product)
        version = f"text-minilm-{digest[:12]}"
        lineage = {"data": "SIMULATED pairs (bench text)", "base_model_version": base}
        ServingRegistry(repo.engine).register_text_model(
            TextModel(version, "minilm", base, artifacts.dim, artifacts.query,
                      artifacts.product, digest, asdict(config), {}, lineage)
        )  # fmt: skip
        log(f"[text] reindex --text {version}")
        report = assembly.open_text_reindexer(settings, repo).run(version)
        if report.retired:
            _drop(settings, repo, report.retired)
        return version
    finally:
        repo.close()


def _drop(settings: Settings, repo: PostgresRepository, collection: str) -> None:
    ServingRegistry(repo.engine, text_collections).forget(collection)
    client = connect(settings.milvus_uri, settings.milvus_token.get_secret_value())
    client.drop_collection(collection)
    client.close()


def words_alone(settings: Settings, log: Callable[[str], None]) -> str | None:
    """Text queries back to words alone: a previous run's text collection retired (dropped
    once this run's serves). Returns its name."""
    engine = make_engine(settings.pg_dsn)
    try:
        retired = ServingRegistry(engine, text_collections).stop_serving()
    finally:
        engine.dispose()
    if retired:
        log(f"[text] {retired} retired: words alone first")
    return retired


def _api_steps(
    port: int, bodies: list[tuple[bytes, str]], sizes: TextServeSizes, log: Callable[[str], None]
) -> list[dict[str, Any]]:
    run_requests("127.0.0.1", port, "/v1/search/text", bodies[:20], 1, 1.0)  # warm-up
    runs = []
    for c in sizes.concurrencies:
        log(f"[text] {c} clients for {sizes.seconds:.0f} s")
        result = run_requests("127.0.0.1", port, "/v1/search/text", bodies, c, sizes.seconds)
        runs.append(asdict(result))
    return runs


def _answers_with(port: int, model_version: str) -> bool:
    body = json.dumps({"query": "dress", "k": 1}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/search/text",
        body,
        {"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return bool(json.loads(response.read())["model_version"] == model_version)


def run_text_serve_bench(
    settings: Settings, sizes: TextServeSizes, out_dir: Path, log: Callable[[str], None] = print
) -> dict[str, Any]:
    started = time.monotonic()
    products = ensure_indexed(settings, log, sizes.products)
    queries = text_queries(sizes.queries, sizes.seed)
    log(f"[text] the store alone: {len(queries)} queries over {products} products")
    store = store_alone(settings, queries)
    bodies = [(json.dumps({"query": q, "k": 10}).encode(), "application/json") for q in queries]
    port = free_port()
    env = {**os.environ, "STYLESTREAM_API_PORT": str(port), "STYLESTREAM_API_RATE_PER_S": "0"}
    proc = Process(["api"], settings.data_dir / "bench" / "api-text.log", env)
    previous = words_alone(settings, log)
    try:
        wait_until(lambda: api_ready(port), 90, "search API")
        runs = _api_steps(port, bodies, sizes, log)
        version = serve_text_model(settings, log, sizes.seed)
        if previous:
            repo = PostgresRepository.from_dsn(settings.pg_dsn)
            _drop(settings, repo, previous)
            repo.close()
        wait_until(lambda: _answers_with(port, f"hybrid:{version}"), 60, "the hybrid")
        hybrid = _api_steps(port, bodies, sizes, log)
    finally:
        proc.stop()
    light = hybrid[0]
    report = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "data": "SIMULATED shoppers' wording over the dev catalogue",
        "products": products,
        "endpoint": "POST /v1/search/text (k=10)",
        "store_alone": store,
        "api": runs,
        "hybrid_model": version,
        "api_hybrid": hybrid,
        "done_when": {
            "ranking": "hybrid",
            "light_load_concurrency": light["concurrency"],
            "light_load_p99_ms": light["p99_ms"],
            "goal_p99_ms": GOAL_P99_MS,
            "met": light["p99_ms"] <= GOAL_P99_MS and light["errors"] == 0,
        },
        "wall_seconds": round(time.monotonic() - started, 1),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "text-serve.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, out_dir / "text-serve.png")
    return report


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = report["api"] + report["api_hybrid"]
    kinds = ["words"] * len(report["api"]) + ["hybrid"] * len(report["api_hybrid"])
    labels = ["Postgres alone"] + [
        f"{kind}, {r['concurrency']} client(s)" for kind, r in zip(kinds, runs, strict=True)
    ]
    p50 = [report["store_alone"]["p50_ms"]] + [r["p50_ms"] for r in runs]
    p99 = [report["store_alone"]["p99_ms"]] + [r["p99_ms"] for r in runs]
    xs = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.bar(xs - 0.2, p50, 0.4, label="p50")
    ax.bar(xs + 0.2, p99, 0.4, label="p99")
    ax.axhline(GOAL_P99_MS, color="green", ls=":", label="goal: p99 50 ms at light load")
    ax.set_xticks(xs, labels, fontsize=8)
    ax.set_ylabel("ms")
    ax.set_title("Text search latency (POST /v1/search/text), one run")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
