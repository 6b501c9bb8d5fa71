"""Complete the look on real Postgres, Milvus and Kafka: `train outfits` registers a compatibility
model with its lineage, the API answers per role from Milvus's department filter reranked by it,
bad queries get a clear 4xx, and a click on a look's item reaches the miner as an outfit pair."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from deploy.local.process import free_port
from processors.products import ProductProcessor
from search.outfits import ROLE_DEPARTMENTS, WORN_WITH
from stores.pairs import PairRepository
from stores.side_models import CompatModels, SideModel
from stylestream.cli import main
from tests.events import photo, upsert
from tests.integration.conftest import Stack, generated_requests_hold, wait_for
from tests.integration.test_mining import start_miner

pytestmark = pytest.mark.services
N = 60
TOPS = {"t-shirt-top", "pullover", "shirt"}


@pytest.fixture(scope="module")
def stack(make_stack: Callable[..., Stack], processor: ProductProcessor) -> Stack:
    stack = make_stack(
        milvus_index="FLAT", serving_refresh_s="0.2", miner_metrics_port=str(free_port())
    )
    stack.write(processor, [upsert(f"o{i:03d}", 1, i) for i in range(N)])
    return stack


def _cli(stack: Stack, *args: str) -> str:
    result = CliRunner().invoke(main, list(args), env=stack.env(), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _top(stack: Stack) -> str:
    """A product the tagger filed under tops."""
    ids = [f"o{i:03d}" for i in range(N) if photo(i)[1] in TOPS]
    attributes = stack.repo.get_attributes(ids)
    return next(p for p in ids if any(a["attribute_key"] == "department.tops"
                                      for a in attributes.get(p, [])))  # fmt: skip


def test_without_a_compatibility_model_the_api_says_how_to_get_one(
    stack: Stack, client: TestClient
) -> None:
    r = client.get(f"/v1/products/{_top(stack)}/complete-the-look")
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "no_compatibility_model"
    assert "train outfits" in r.json()["error"]["message"]


@pytest.fixture(scope="module")
def registered(stack: Stack) -> str:
    out = _cli(stack, "train", "outfits", "--small")
    version: str = json.loads(out[out.index("{") :])["registered"]
    return version


def test_train_outfits_registers_a_model_with_lineage_that_serves(
    stack: Stack, registered: str, processor: ProductProcessor
) -> None:
    models = CompatModels(stack.repo.engine)
    assert models.serving_version() == registered
    model = models.get(registered)
    assert model is not None and SideModel.digest(model.artifact) == model.artifact_sha256
    assert model.base_model_version == processor.embedder.model_version
    assert model.lineage["label_fraction"] == 0.1 and model.lineage["labelled_outfits"] > 0
    assert model.lineage["unlabelled_items"] > 0  # semi-supervised by default
    assert 0 < model.lineage["pseudo_labelled_outfits"] <= model.lineage["unlabelled_outfits"]
    assert "SIMULATED" in model.lineage["data"]
    assert model.lineage["base_model_version"] == model.base_model_version
    assert set(model.metrics["held_out"]) >= {"fitb", "auc"} and model.params["semi"] is True
    listed = _cli(stack, "index", "compat")
    assert listed.startswith(f"serving   {registered}  base={model.base_model_version}")
    refused = CliRunner().invoke(main, ["index", "compat", "--serve", "x"], env=stack.env())
    assert refused.exit_code != 0 and "no compatibility model 'x'" in refused.output


def test_each_role_is_answered_from_its_department_reranked_by_compatibility(
    stack: Stack, registered: str, client: TestClient
) -> None:
    top = _top(stack)
    body = wait_for(
        lambda: (
            (r := client.get(f"/v1/products/{top}/complete-the-look?explain=true&k=3"))
            .status_code == 200 and r.json()
        ),
        timeout=10,
    )  # fmt: skip
    assert body["product_role"] == "top" and body["model_version"] == f"compat:{registered}"
    assert [r["role"] for r in body["roles"]] == list(WORN_WITH["top"])
    answered = 0
    for role in body["roles"]:
        results = role["results"]
        assert len(results) <= 3 and top not in [r["product_id"] for r in results]
        for r in results:
            assert ROLE_DEPARTMENTS[role["role"]] in r["attributes"]
            assert r["score"] == pytest.approx(r["look"]["compatibility"], abs=1e-6)
            assert r["look"]["retrieved_rank"] >= 1
        scores = [r["score"] for r in results]
        assert scores == sorted(scores, reverse=True)
        answered += bool(results)
    assert answered >= 2  # the catalogue has bottoms, shoes and bags
    assert len({r["impression_id"] for r in body["roles"]}) == len(body["roles"])
    chosen = client.get(f"/v1/products/{top}/complete-the-look?roles=shoes,bag")
    assert [r["role"] for r in chosen.json()["roles"]] == ["shoes", "bag"]


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/v1/products/nope/complete-the-look", 404, "unknown_product"),
        ("/v1/products/{top}/complete-the-look?roles=hat", 422, "invalid_query"),
        ("/v1/products/{top}/complete-the-look?roles=shoes,top", 422, "invalid_query"),
        ("/v1/products/{top}/complete-the-look?roles=", 422, "invalid_request"),
        ("/v1/products/{top}/complete-the-look?roles=shoes,,bag", 422, "invalid_request"),
        ("/v1/products/{top}/complete-the-look?k=0", 422, "invalid_request"),
        ("/v1/products/{top}/complete-the-look?k=21", 422, "invalid_request"),
    ],
)
def test_bad_look_queries_get_a_clear_4xx(
    stack: Stack, registered: str, client: TestClient, path: str, status: int, code: str
) -> None:
    r = client.get(path.format(top=_top(stack)))
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code


def test_clicks_on_a_look_become_outfit_pairs(
    stack: Stack, registered: str, client: TestClient, tmp_path: Path
) -> None:
    top = _top(stack)
    body = client.get(f"/v1/products/{top}/complete-the-look?roles=shoes&k=4").json()
    shoes = body["roles"][0]
    shown = [r["product_id"] for r in shoes["results"]]
    assert len(shown) >= 2
    r = client.post(
        "/v1/interactions",
        json={"impression_id": shoes["impression_id"], "product_id": shown[1], "position": 2},
        headers={"X-Session-Id": body["session_id"]},
    )
    assert r.status_code == 202, r.text
    want = f"{shoes['impression_id']}:{shown[1]}"
    pairs = PairRepository(stack.repo.engine)
    since = datetime(2000, 1, 1, tzinfo=UTC)
    miner = start_miner(stack, tmp_path)
    try:
        wait_for(lambda: any(p["pair_id"] == want for p in pairs.since(since)), timeout=120)
    finally:
        miner.stop()
    pair = next(p for p in pairs.since(since) if p["pair_id"] == want)
    assert pair["query"] == {"kind": "outfit", "product_id": top, "role": "shoes", "filters": {}}
    assert pair["hard_negatives"] == shown[:1]
    assert pair["ranker_model_version"] == f"compat:{registered}"


def test_generated_look_queries_never_get_a_5xx(registered: str, client: TestClient) -> None:
    """schemathesis against the served document, with a model serving (the API suite's run
    has none, so it only meets the 409)."""
    generated_requests_hold(client, examples=40, path="/v1/products/{product_id}/complete-the-look")
