"""The binary index end to end, on real Kafka, Postgres and a Milvus standalone server (Milvus
Lite 3 has no binary vectors): `reindex --codes` fits a coder and builds the Hamming index
beside the new collection, a worker writes new products to both, and the API in serving mode
"binary" answers as the float search does."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from api.app import create_app
from config import assembly
from processors.products import ProductProcessor
from schemas.events import encode_event
from stores.codes import CodeIndexConfig, MilvusCodeIndex, code_collection_name
from stores.registry import ServingRegistry
from stylestream.cli import main
from tests.events import upsert
from tests.integration.conftest import Stack, Worker, wait_for

pytestmark = pytest.mark.services
N = 60


@pytest.fixture(scope="module")
def stack(
    make_stack: Callable[..., Stack],
    processor: ProductProcessor,
    milvus_standalone_server: tuple[str, int],
) -> Iterator[Stack]:
    stack = make_stack(
        milvus_uri=milvus_standalone_server[0],
        milvus_index="FLAT",
        serving_refresh_s="0.2",
        milvus_alias="",
        binary_index="BIN_FLAT",
    )
    stack.write(processor, [upsert(f"b{i:03d}", 1, i) for i in range(N)])
    yield stack
    stack.dispose()  # before the session's server stops, whichever fixture started first


def _similar(client: TestClient, pid: str) -> list[str]:
    response = client.get(f"/v1/products/{pid}/similar", params={"k": 5})
    assert response.status_code == 200, response.text
    return [r["product_id"] for r in response.json()["results"]]


def test_reindex_with_codes_then_the_worker_writes_both_and_the_api_searches_codes(
    stack: Stack, start_worker: Callable[[Stack], Worker]
) -> None:
    base = assembly.base_model(stack.settings)[0]
    result = CliRunner().invoke(
        main, ["reindex", "--model", base, "--codes", "sign", "--no-progress"], env=stack.env()
    )
    assert result.exit_code == 0, result.output
    report: dict[str, Any] = json.loads(result.output[result.output.index("{") :])
    assert report["coder_version"].startswith("sign-1280-") and report["rows"] == N
    serving = next(r for r in ServingRegistry(stack.repo.engine).collections(("serving",)))
    assert serving.coder_version == report["coder_version"]
    codes = MilvusCodeIndex(
        assembly.milvus_config(stack.settings),
        code_collection_name(serving.collection, report["coder_version"]),
        1280,
        CodeIndexConfig("BIN_FLAT"),
    )
    codes.ensure()
    assert codes.count() == N
    # a worker writes a new product to the float collection and to its binary index
    worker = start_worker(stack)
    event = upsert("b999", 1, 3)
    stack.send_raw([(b"b999", encode_event(event))])
    wait_for(lambda: codes.count() == N + 1, timeout=90)
    worker.stop()
    # the API searching the Hamming index, then the float rerank, answers as float search
    binary = stack.settings.model_copy(update={"serving_mode": "binary"})
    with TestClient(create_app(stack.settings)) as floats, TestClient(create_app(binary)) as bits:
        agree = [len(set(_similar(floats, p)) & set(_similar(bits, p))) for p in ("b001", "b999")]
        # a request's own effort: taken within bounds, refused with a 422 outside them
        asked = {"k": 5, "oversampling": 2, "nprobe": 4}
        assert bits.get("/v1/products/b001/similar", params=asked).status_code == 200
        for bad in ({"oversampling": 0}, {"oversampling": 65}, {"nprobe": 0}):
            r = bits.get("/v1/products/b001/similar", params={"k": 5, **bad})
            assert r.status_code == 422, (bad, r.text)
    assert min(agree) >= 4, agree  # oversampling x8 over 61 products: nearly all the same
    codes.close()
