"""A compact query model served by the API on real Postgres, Milvus and Kafka: trained (tiny)
against the base model, registered with it as its gallery model, it answers image searches
against the base collection; registered against another model, the API refuses image
searches with a clear 409 and is not ready, while product searches go on."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from api.app import create_app
from config import assembly
from processors.embedding import base_model_path
from processors.products import ProductProcessor
from stores.registry import ServingRegistry
from tests.events import photo, upsert
from tests.integration.conftest import Stack
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
        gallery=None,  # the base model: its collection serves already
        compact=EncoderSpec("lite0", 32),
        compact_training=TrainConfig(epochs=1, batch=32),
    )
    base = base_model_path(stack.settings.models_path, stack.settings.image_size)
    manifest = train_compact_models(Path(models), plan, lambda m: None, base_model=base)
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
