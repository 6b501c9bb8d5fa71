"""The `stylestream` CLI against the real services."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from kafka import KafkaConsumer, TopicPartition

from config.settings import Settings
from deploy.local.kafka import KafkaService, new_cluster_id
from processors.products import ProductProcessor, RawEvent
from schemas.events import encode_event, parse_product_event
from stores.base import FixedTarget
from stores.writer import ProductWriter
from stylestream.cli import main
from tests.events import upsert
from tests.integration.conftest import Stack

pytestmark = pytest.mark.services


def run(stack: Stack | None, *args: str) -> tuple[int, str]:
    env = {f"STYLESTREAM_{k.upper()}": v for k, v in (stack.overrides if stack else {}).items()}
    result = CliRunner().invoke(main, list(args), env=env)
    return result.exit_code, result.output


def test_dev_status_reports_every_service_healthy(running_services: object) -> None:
    code, out = run(None, "dev", "status")
    assert code == 0, out
    for name in ("kafka", "postgres", "milvus"):
        assert f"{name}" in out
    assert "DOWN" not in out


def test_kafka_storage_formats_with_a_cluster_id_starting_with_a_dash(
    running_services: Settings, tmp_path: Path
) -> None:
    """A random cluster id starts with '-' one time in 64: it must not read as an option."""
    service = KafkaService(running_services)
    live = (service.home / "server.properties").read_text().splitlines()
    config = tmp_path / "server.properties"
    config.write_text(
        "\n".join(f"log.dirs={tmp_path / 'data'}" if p.startswith("log.dirs=") else p for p in live)
    )
    service.format_storage(config, "-jZAnuSTTcKsv0lJzZPDTQ")
    meta = (tmp_path / "data" / "meta.properties").read_text()
    assert "cluster.id=-jZAnuSTTcKsv0lJzZPDTQ" in meta.splitlines()
    with pytest.raises(RuntimeError, match="format failed"):
        service.format_storage(tmp_path / "missing.properties", new_cluster_id())


def test_produce_sends_valid_lines_and_reports_invalid_ones(
    make_stack: Callable[..., Stack], tmp_path: Path
) -> None:
    stack = make_stack()
    good = [json.loads(encode_event(upsert(f"c{i}", 1, i))) for i in range(3)]
    lines = [
        json.dumps(good[0]),
        "{broken",
        json.dumps({**good[1], "currency": "euro"}),
        json.dumps(good[1]),
        json.dumps({**good[2], "schema_version": 7}),
        json.dumps(good[2]),
    ]
    file = tmp_path / "events.jsonl"
    file.write_text("\n".join(lines) + "\n")
    code, out = run(stack, "produce", "products", str(file), "--no-progress")
    assert code == 2
    assert "sent 3, invalid 3" in out
    assert "line 2:" in out and "line 3:" in out and "currency" in out and "line 5:" in out

    consumer = KafkaConsumer(bootstrap_servers=stack.settings.kafka_bootstrap)
    topic = stack.settings.products_topic
    parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    got = []
    for _ in range(20):
        for records in consumer.poll(timeout_ms=300).values():
            got += [parse_product_event(json.loads(r.value)) for r in records]
        if len(got) >= 3:
            break
    consumer.close()
    assert sorted(e.product_id for e in got) == ["c0", "c1", "c2"]
    assert all(e.produced_at is not None for e in got)


def test_search_by_image_and_by_product_id(
    make_stack: Callable[..., Stack], processor: ProductProcessor, tmp_path: Path
) -> None:
    from PIL import Image

    from tests.events import photo

    stack = make_stack(milvus_index="FLAT")
    result = processor.process([RawEvent(encode_event(upsert(f"s{i}", 1, i))) for i in range(30)])
    ProductWriter(FixedTarget(stack.index), stack.repo).write(result)
    query = tmp_path / "query.png"
    Image.fromarray(photo(7)[0]).save(query)

    code, out = run(stack, "search", "--image", str(query), "-k", "3", "--json")
    assert code == 0, out
    hits = json.loads(out)
    assert hits[0]["product_id"] == "s7" and hits[0]["category"] == photo(7)[1]
    assert len(hits) == 3

    code, out = run(stack, "search", "--product-id", "s7", "-k", "5")
    assert code == 0, out
    assert "s7 " not in out and len(out.strip().splitlines()) == 5

    code, out = run(stack, "search", "--product-id", "nope")
    assert code == 1 and "not in the index" in out and "Traceback" not in out

    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    code, out = run(stack, "search", "--image", str(bad))
    assert code == 1 and "cannot decode" in out

    either = ["--attribute", "department.footwear", "--attribute", "department.bags"]
    code, out = run(stack, "search", "--product-id", "s7", "-k", "30", "--json", *either)
    hits = json.loads(out)
    assert code == 0 and hits, out
    assert all({"department.footwear", "department.bags"} & set(h["attributes"]) for h in hits)
    code, out = run(stack, "search", "--product-id", "s7", "--attribute", "colour.plaid")
    assert code == 2 and "unknown attribute keys" in out


def test_eval_attributes_writes_json_and_a_chart(tmp_path: Path, attribute_models: object) -> None:
    code, out = run(
        None,
        "eval",
        "attributes",
        "--fashion-mnist",
        "60",
        "--synthetic",
        "40",
        "--gallery",
        "100",
        "--out",
        str(tmp_path),
        "--json",
    )
    assert code == 0, out
    report = json.loads(out.strip().splitlines()[-1])
    assert json.loads((tmp_path / "attributes.json").read_text()) == report
    assert (tmp_path / "attributes.png").read_bytes()[:4] == b"\x89PNG"
    assert set(report["category_accuracy"]) == {"fashion_mnist_test", "synthetic_test"}
    for scores in report["category_accuracy"].values():
        assert set(scores) == {"model", "search", "fusion"}
        assert all(0.0 <= v <= 1.0 for v in scores.values())
    assert {"colour", "pattern", "sleeve", "category"} <= set(report["group_macro_f1"])
    assert report["attributes"]["pattern.striped"]["support"] > 0
    assert set(report["roi_mean_iou"]["synthetic_test"]) == {"learned", "foreground"}


def test_eval_text_judges_four_rankers_on_held_out_wording(
    tmp_path: Path, attribute_models: object
) -> None:
    out_file = tmp_path / "text.json"
    code, out = run(None, "eval", "text", "--small", "--seeds", "2", "--json", "--out",
                    str(out_file))  # fmt: skip
    assert code == 0, out
    report = json.loads(out.strip().splitlines()[-1])
    assert json.loads(out_file.read_text()) == report
    assert out_file.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    assert "SIMULATED" in report["data"] and report["training"]["pairs"] > 50
    for split in ("held_out_wording", "seen_wording_held_out_sessions"):
        assert set(report[split]) == {"lexical", "gru", "minilm", "hybrid"}
        for scores in report[split].values():
            assert set(scores) == {"MRR", "MAP", "NDCG@10", "P@50", "R@50"}
            assert all(0.0 <= v <= 1.0 for v in scores.values())
    # held-out synonyms are words the catalogue never uses: lexical matching finds less there
    test, seen = report["held_out_wording"], report["seen_wording_held_out_sessions"]
    assert test["lexical"]["MRR"] < seen["lexical"]["MRR"]
    assert report["gains_pct"]["myntra_roberta_over_gru"]["MRR"] == 7.8
    seeds = report["over_seeds"]
    assert seeds["seeds"] == [0, 1] and len(seeds["by_seed"]) == 2
    assert seeds["by_seed"][0] == test  # the report's own figures are seed 0's
    mean, std = seeds["held_out_wording"]["mean"], seeds["held_out_wording"]["std"]
    for method in ("gru", "minilm"):
        for name in ("MRR", "MAP"):
            values = [s[method][name] for s in seeds["by_seed"]]
            assert mean[method][name] == pytest.approx(sum(values) / 2, abs=1e-4)
            assert std[method][name] == pytest.approx(abs(values[0] - values[1]) / 2, abs=1e-4)
    for name, held in seeds["minilm_beats_gru_seeds"].items():
        assert held == sum(s["minilm"][name] > s["gru"][name] for s in seeds["by_seed"])


def test_catalog_writes_products_with_synthetic_fields_marked(tmp_path: Path) -> None:
    code, out = run(None, "catalog", "fashion-mnist", "-n", "25", "--out", str(tmp_path))
    assert code == 0, out
    events = [
        parse_product_event(json.loads(line))
        for line in (tmp_path / "products.jsonl").read_text().splitlines()
    ]
    assert len(events) == 25
    for e in events:
        assert e.product_id.startswith("fmnist-")
        assert set(e.synthetic_fields) == {"title", "brand", "price", "currency"}  # type: ignore[union-attr]
        assert Path(e.image.path).exists()  # type: ignore[union-attr, arg-type]
        assert "train-" in e.image.path  # type: ignore[union-attr, operator]


def test_schemas_export_writes_json_schemas(tmp_path: Path) -> None:
    code, _ = run(None, "schemas", "export", str(tmp_path))
    assert code == 0
    schema = json.loads((tmp_path / "products.v1.schema.json").read_text())
    assert "ProductUpsert" in json.dumps(schema)
    assert "error_kind" in (tmp_path / "dead-letter.v1.schema.json").read_text()
    interactions = (tmp_path / "interactions.v1.schema.json").read_text()
    assert "search.impression" in interactions and "interaction.click" in interactions
    assert "outfit.upsert" in (tmp_path / "outfits.v1.schema.json").read_text()


def test_demo_json_keeps_stdout_for_the_json_object(make_stack: Callable[..., Stack]) -> None:
    """`scripts/demo.sh --json | jq` works: progress and logs on stderr, one JSON on stdout."""
    stack = make_stack()
    args = ["demo", "-n", "60", "--queries", "50", "--no-loop", "--json"]
    done = subprocess.run(
        [sys.executable, "-m", "stylestream.cli", *args],
        env=stack.env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)  # the whole of stdout is one JSON document
    assert report["produced"] == report["indexed"] == 60 and report["queries"] == 50
    assert 0.0 <= report["recall_at_10"] <= 1.0
    assert "[1/6]" in done.stderr and "[6/6]" in done.stderr
