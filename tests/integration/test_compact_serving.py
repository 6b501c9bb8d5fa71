"""A compact query model served by the API on real Postgres, Milvus and Kafka: trained (tiny)
against the base model, registered with it as its gallery model, it answers image searches
against the base collection; registered against another model, the API refuses image
searches with a clear 409 and is not ready, while product searches go on. A trained gallery
model made the base model (STYLESTREAM_BASE_MODEL) runs through the worker, the re-index and
the API with its own compact query model."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import update

from api.app import create_app
from config import assembly
from processors.embedding import OnnxEmbedder, base_model_path
from processors.products import ProductProcessor
from schemas.events import encode_event
from schemas.tables import products
from stores.milvus import MilvusVectorIndex
from stores.registry import ServingRegistry
from stylestream.cli import main
from tests.events import photo, upsert
from tests.integration.conftest import Stack, Worker, wait_for
from training.attributes import Sizes, train_attributes
from training.compact import EncoderSpec, TrainConfig
from training.compact_run import CompactPlan, query_model, train_compact_models

pytestmark = pytest.mark.services
N = 30


@pytest.fixture(scope="module")
def stack(make_stack: Callable[..., Stack], processor: ProductProcessor) -> Stack:
    stack = make_stack(milvus_index="FLAT")
    stack.write(processor, [upsert(f"c{i:03d}", 1, i) for i in range(N)])
    return stack


def _png(i: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(photo(i)[0]).save(buf, format="PNG")
    return buf.getvalue()


def test_a_compact_query_model_serves_its_gallery_and_only_it(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> None:
    models = tmp_path_factory.mktemp("compact-models")
    plan = CompactPlan(
        train_photos=64,
        compact_photos=64,
        gallery=None,  # the base model: its collection serves already
        compact=EncoderSpec("lite0", 32),
        compact_training=TrainConfig(epochs=1, batch=32),
        shots_per_photo=2,
        distil=True,  # fixed shots embedded by the given gallery (base) model
    )
    base = base_model_path(stack.settings.models_path, stack.settings.image_size)
    manifest = train_compact_models(Path(models), plan, lambda m: None, gallery_model=base)
    model = query_model(Path(models), manifest)
    registry = ServingRegistry(stack.repo.engine)
    registry.register_query_model(model)
    registry.register_query_model(model)  # again: the same bytes are a no-op
    stored = registry.query_model(model.model_version)
    assert stored is not None and stored.artifact == model.artifact and stored.dim == 1280
    base_version = assembly.base_model(stack.settings)[0]
    assert model.gallery_model_version == base_version  # the base model's collection serves

    compatible = stack.settings.model_copy(update={"query_model": model.model_version})
    with TestClient(create_app(compatible)) as client:
        r = client.post(
            "/v1/search/upload", files={"image": ("q.png", _png(3), "image/png")}, data={"k": "5"}
        )
        assert r.status_code == 200, r.text
        found = [hit["product_id"] for hit in r.json()["results"]]
        assert len(found) == 5 and all(pid.startswith("c") for pid in found)
        assert client.get("/readyz").json()["checks"]["query_model"] == "ok"

    other = replace(model, model_version=model.model_version + "-other",
                    gallery_model_version="another-gallery-model")  # fmt: skip
    registry.register_query_model(other)
    mismatched = stack.settings.model_copy(update={"query_model": other.model_version})
    with TestClient(create_app(mismatched)) as client:
        r = client.post("/v1/search/upload", files={"image": ("q.png", _png(3), "image/png")})
        assert r.status_code == 409, r.text
        error = r.json()["error"]
        assert error["code"] == "incompatible_query_model"
        assert "another-gallery-model" in error["message"] and base_version in error["message"]
        ready = client.get("/readyz")
        assert (
            ready.status_code == 503
            and "another-gallery-model" in ready.json()["checks"]["query_model"]
        )
        assert client.get("/v1/products/c001/similar", params={"k": 3}).status_code == 200
    with pytest.raises(ValueError, match="other bytes"):
        registry.register_query_model(replace(other, artifact_sha256="0" * 64))


def _search(client: TestClient, i: int) -> list[str]:
    r = client.post(
        "/v1/search/upload", files={"image": ("q.png", _png(i), "image/png")}, data={"k": "5"}
    )
    assert r.status_code == 200, r.text
    return [hit["product_id"] for hit in r.json()["results"]]


def test_a_gallery_model_as_base_model_runs_the_worker_reindex_and_compact_queries(
    make_stack: Callable[..., Stack],
    start_worker: Callable[[Stack], Worker],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    models = Path(tmp_path_factory.mktemp("gallery-models"))
    plan = CompactPlan(
        train_photos=48,
        compact_photos=48,
        shots_per_photo=1,
        gallery=EncoderSpec("lite2", 64, dim=32, trainable_from=15),
        compact=EncoderSpec("lite0", 32, dim=32, blocks=8, head_width=64),
        gallery_training=TrainConfig(epochs=1, batch=16),
        compact_training=TrainConfig(epochs=1, batch=16),
    )
    manifest = train_compact_models(models, plan, lambda m: None)
    gallery = OnnxEmbedder(models / manifest["models"]["gallery"])
    tiny = Sizes(fashion_mnist=60, synthetic=30, detector_scenes=20, detector_fashion_mnist=10,
                 detector_epochs=1, tagger_epochs=2)  # fmt: skip
    train_attributes(models, gallery, tiny, log=lambda m: None)  # the tagger reads its space
    stack = make_stack(
        model_dir=str(models),
        base_model=manifest["models"]["gallery"],
        milvus_index="FLAT",
        serving_refresh_s="0.2",
        milvus_alias="",
    )
    worker = start_worker(stack)
    stack.send_raw(
        [(f"g{i:03d}".encode(), encode_event(upsert(f"g{i:03d}", 1, i))) for i in range(N)]
    )
    wait_for(lambda: stack.index.count() == N, timeout=90)
    worker.stop()
    assert stack.repo.base_versions() == [gallery.model_version]

    model = query_model(models, manifest)
    ServingRegistry(stack.repo.engine).register_query_model(model)
    compact = stack.settings.model_copy(update={"query_model": model.model_version})
    with TestClient(create_app(compact)) as client:
        assert len(_search(client, 3)) == 5

    # a product embedded by an earlier base model is left out of the re-index, and named
    with stack.repo.engine.begin() as conn:
        conn.execute(
            update(products).where(products.c.product_id == "g000").values(model_version="old")
        )
    result = CliRunner().invoke(
        main, ["reindex", "--model", gallery.model_version, "--no-progress"], env=stack.env()
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{") :])
    assert report["rows"] == N - 1 and report["missing_base_embedding"] == ["g000"]
    rebuilt = MilvusVectorIndex.open(
        assembly.milvus_config(stack.settings), report["collection"], 32
    )
    assert rebuilt.get(["g000", "g001"]).keys() == {"g001"}
    with TestClient(create_app(compact)) as client:
        assert len(_search(client, 3)) == 5
