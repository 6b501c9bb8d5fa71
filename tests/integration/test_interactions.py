"""Search impressions and click reports through the API onto real Kafka topics."""

from __future__ import annotations

import base64
import hashlib
import io
import time
from collections.abc import Callable

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from pydantic import SecretStr

from api.app import create_app
from deploy.local.process import free_port
from processors.products import ProductProcessor
from schemas.interactions import Interaction, SearchImpression
from tests.events import photo, upsert
from tests.integration.conftest import Stack, read_topic
from training.datasets import to_rgb

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def stack(make_stack: Callable[..., Stack], processor: ProductProcessor) -> Stack:
    stack = make_stack(milvus_index="FLAT")
    events = [upsert(f"i{i:03d}", 1, i) for i in range(30)]
    stack.write(processor, events)
    return stack


def png(i: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(photo(i)[0]).save(buf, format="PNG")
    return buf.getvalue()


def test_every_image_search_emits_its_impression(
    client: TestClient, stack: Stack, processor: ProductProcessor
) -> None:
    r = client.post(
        "/v1/search/upload",
        files={"image": ("q.png", png(4), "image/png")},
        data={"k": "5", "attributes": ["department.tops", "department.dresses"]},
        headers={"X-Session-Id": "sess-1", "X-User-Id": "user-9"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    # a session the caller chose is not taken: the API issues (and signs) its own
    assert body["session_id"] != "sess-1" and body["impression_id"]
    found = read_topic(stack, stack.settings.impressions_topic)(body["impression_id"])
    assert len(found) == 1
    impression = found[0]
    assert isinstance(impression, SearchImpression)
    assert impression.session_id == body["session_id"] and impression.user_id == "user-9"
    assert [(s.product_id, s.position) for s in impression.results] == [
        (item["product_id"], n) for n, item in enumerate(body["results"], 1)
    ]
    q = impression.query
    rgb = to_rgb(photo(4)[0])
    assert q.kind == "image" and q.image_sha256 == hashlib.sha256(rgb.tobytes()).hexdigest()
    assert q.filters == {"attributes": ["department.tops", "department.dresses"]}
    assert q.embedding_f16 is not None
    embedding = np.frombuffer(base64.b64decode(q.embedding_f16), dtype="<f2").astype(np.float32)
    expected = processor.describe_queries([rgb])[0][0]
    assert embedding.shape == expected.shape and np.abs(embedding - expected).max() < 2e-3
    assert impression.model_version == body["model_version"]


def test_more_like_this_emits_a_product_impression_with_page_positions(
    client: TestClient, stack: Stack
) -> None:
    body = client.get("/v1/products/i002/similar", params={"k": 4, "offset": 3}).json()
    assert body["session_id"]  # a new session for a caller that sent none
    again = client.get(
        "/v1/products/i002/similar", params={"k": 1}, headers={"X-Session-Id": body["session_id"]}
    ).json()
    assert again["session_id"] == body["session_id"]  # an issued session is kept
    impression = read_topic(stack, stack.settings.impressions_topic)(body["impression_id"])[0]
    assert isinstance(impression, SearchImpression)
    assert impression.query.kind == "product" and impression.query.product_id == "i002"
    assert [s.position for s in impression.results] == [4, 5, 6, 7]
    assert impression.session_id == body["session_id"]


def test_text_searches_emit_impressions_carrying_the_words(
    client: TestClient, stack: Stack
) -> None:
    body = client.post(
        "/v1/search/text", json={"query": "bag", "k": 3, "filters": {"category": "bag"}}
    ).json()
    impression = read_topic(stack, stack.settings.impressions_topic)(body["impression_id"])[0]
    assert isinstance(impression, SearchImpression)
    assert impression.query.kind == "text" and impression.query.text == "bag"
    assert impression.query.terms is None and impression.query.filters == {"category": "bag"}
    assert [s.product_id for s in impression.results] == [r["product_id"] for r in body["results"]]
    assert impression.results and impression.model_version == "lexical-v1"
    weighted = client.post("/v1/search/text", json={"terms": {"bag": 2, "tote": -0.5}}).json()
    found = read_topic(stack, stack.settings.impressions_topic)(weighted["impression_id"])[0]
    assert isinstance(found, SearchImpression)
    assert found.query.text == "bag" and found.query.terms == {"bag": 2.0, "tote": -0.5}


def test_clicks_are_acknowledged_by_kafka_then_accepted(client: TestClient, stack: Stack) -> None:
    search = client.get("/v1/products/i001/similar", params={"k": 3}).json()
    clicked = search["results"][1]["product_id"]
    r = client.post(
        "/v1/interactions",
        json={"impression_id": search["impression_id"], "product_id": clicked, "position": 2},
        headers={"X-Session-Id": search["session_id"]},
    )
    assert r.status_code == 202, r.text
    assert r.json()["interaction"]["type"] == "interaction.click"
    events = read_topic(stack, stack.settings.interactions_topic)(search["impression_id"])
    assert len(events) == 1
    click = events[0]
    assert isinstance(click, Interaction)
    assert (click.product_id, click.position, click.session_id) == (
        clicked,
        2,
        search["session_id"],
    )
    cart = client.post(
        "/v1/interactions",
        json={"impression_id": search["impression_id"], "product_id": clicked, "type": "purchase"},
        headers={"X-Session-Id": search["session_id"]},
    )
    assert cart.status_code == 202 and cart.json()["interaction"]["type"] == "interaction.purchase"


def flip(hex_digit: str) -> str:
    """Another hex digit (a tampered last character must differ from the real one)."""
    return "1" if hex_digit == "0" else "0"


def test_clicks_only_on_impressions_served_in_their_session(client: TestClient) -> None:
    """Poisoned clicks: an invented impression, a real one without its session, or under
    another session (a session of the caller's choosing, steering the held-out split) are
    all refused."""
    mine = client.get("/v1/products/i001/similar", params={"k": 2}).json()
    other = client.get("/v1/products/i001/similar", params={"k": 2}).json()
    assert mine["session_id"] != other["session_id"]
    product = mine["results"][0]["product_id"]
    invented = "0" * 28 + "." + "f" * 32
    for impression, session in (
        (invented, mine["session_id"]),
        (mine["impression_id"], None),
        (mine["impression_id"], other["session_id"]),
        (mine["impression_id"], "sim-chosen-by-caller"),
        (mine["impression_id"], mine["session_id"][:-1] + flip(mine["session_id"][-1])),
    ):
        headers = {"X-Session-Id": session} if session else {}
        r = client.post(
            "/v1/interactions",
            json={"impression_id": impression, "product_id": product},
            headers=headers,
        )
        assert r.status_code == 422 and r.json()["error"]["code"] == "unknown_impression"
    ok = client.post(
        "/v1/interactions",
        json={"impression_id": mine["impression_id"], "product_id": product},
        headers={"X-Session-Id": mine["session_id"]},
    )
    assert ok.status_code == 202


def test_a_click_on_an_old_impression_is_refused(stack: Stack) -> None:
    """Issued ids carry their issue time: a click counts within the impression's TTL only."""
    short = stack.settings.model_copy(update={"api_impression_ttl_s": 3.0})
    with TestClient(create_app(short)) as c:
        body = c.get("/v1/products/i001/similar", params={"k": 1}).json()
        click = {"impression_id": body["impression_id"], "product_id": "i0"}
        session = {"X-Session-Id": body["session_id"]}
        assert c.post("/v1/interactions", json=click, headers=session).status_code == 202
        # ids count whole seconds (an age reads up to 1 s older): fresh reads under 2 s,
        # 4.5 s later reads over 4.5 s, past the 3 s TTL whatever the phase
        time.sleep(4.5)
        late = c.post("/v1/interactions", json=click, headers=session)
        assert late.status_code == 422 and late.json()["error"]["code"] == "unknown_impression"
        again = c.get("/v1/products/i001/similar", params={"k": 1}, headers=session).json()
        assert again["session_id"] == body["session_id"]  # the session itself lives on


def test_api_keys_guard_interactions_and_optionally_searches(stack: Stack) -> None:
    keyed = stack.settings.model_copy(update={"api_keys": [SecretStr("k-1"), SecretStr("k-2")]})
    with TestClient(create_app(keyed)) as c:
        search = c.get("/v1/products/i001/similar", params={"k": 1})
        assert search.status_code == 200  # searches stay open by default
        body = search.json()
        click = {"impression_id": body["impression_id"], "product_id": "i0"}
        session = {"X-Session-Id": body["session_id"]}
        for key in (None, "wrong", "k-1x"):
            headers = session | ({"X-Api-Key": key} if key else {})
            r = c.post("/v1/interactions", json=click, headers=headers)
            assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        r = c.post("/v1/interactions", json=click, headers=session | {"X-Api-Key": "k-2"})
        assert r.status_code == 202
    closed = keyed.model_copy(update={"api_keys_for_search": True})
    with TestClient(create_app(closed)) as c:
        assert c.get("/v1/facets").status_code == 401
        assert c.get("/v1/facets", headers={"X-Api-Key": "k-1"}).status_code == 200
        assert c.get("/healthz").status_code == 200


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        ({"impression_id": "x", "product_id": "a", "position": 0}, {}),
        ({"impression_id": "x", "product_id": "a", "type": "like"}, {}),
        ({"impression_id": "", "product_id": "a"}, {}),
        ({"impression_id": "x", "product_id": "a", "extra": 1}, {}),
        ({"impression_id": "x", "product_id": "a"}, {"X-Session-Id": "no spaces allowed"}),
    ],
)
def test_bad_click_reports_are_a_clear_422(
    client: TestClient, body: dict[str, object], headers: dict[str, str]
) -> None:
    r = client.post("/v1/interactions", json=body, headers=headers)
    assert r.status_code == 422 and r.json()["error"]["message"]


def test_without_kafka_searches_still_answer_and_clicks_say_503(stack: Stack) -> None:
    down = stack.settings.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{free_port()}"})
    with TestClient(create_app(down)) as c:
        started = time.perf_counter()
        r = c.get("/v1/products/i001/similar", params={"k": 3})
        assert r.status_code == 200 and len(r.json()["results"]) == 3
        assert time.perf_counter() - started < 5  # the impression is queued, not awaited
        click = c.post(
            "/v1/interactions",
            json={"impression_id": r.json()["impression_id"], "product_id": "i0"},
            headers={"X-Session-Id": r.json()["session_id"]},
        )
        assert click.status_code == 503
        assert click.json()["error"]["code"] == "events_unavailable"
        assert "Traceback" not in click.text


def test_simulated_shoppers_search_and_click_through_the_api(
    client: TestClient, stack: Stack
) -> None:
    from bench.simulator import ShopperModel, SimulatedQuery, simulate
    from training.datasets import CLASSES, load_split

    images, labels = load_split("t10k")
    queries = [SimulatedQuery(images[i], CLASSES[int(labels[i])]) for i in range(40)]
    logs = simulate(client, queries, sessions=6, queries_per_session=5, seed=3,
                    model=ShopperModel(k=10, noise=0.05))  # fmt: skip
    assert all(log.failed_queries == 0 and len(log.impressions) == 5 for log in logs)
    clicks = [c for log in logs for c in log.clicks]
    assert len(clicks) >= 10
    # position bias: most clicks near the top; hidden relevance: mostly relevant results
    positions = [pos for _, _, pos, _ in clicks]
    assert sum(p <= 3 for p in positions) > sum(p > 3 for p in positions)
    assert sum(rel for *_, rel in clicks) / len(clicks) > 0.7
    # every click reached Kafka under its impression, with its session
    imp, pid, pos, _ = clicks[0]
    events = read_topic(stack, stack.settings.interactions_topic)(imp)
    assert any(
        isinstance(e, Interaction) and e.product_id == pid and e.position == pos for e in events
    )
    session = next(log.session_id for log in logs if any(c[0] == imp for c in log.clicks))
    assert all(isinstance(e, Interaction) and e.session_id == session for e in events)


def test_simulated_text_shoppers_type_search_and_click_through_the_api(
    make_stack: Callable[..., Stack], processor: ProductProcessor
) -> None:
    from bench.simulator import ShopperModel
    from bench.text_shopper import TextQuestion, intents, simulate_text, text_catalogue

    text_stack = make_stack(milvus_index="FLAT")
    catalogue = text_catalogue(garments=60, photos=20, seed=4)
    text_stack.write(processor, catalogue.events)
    wanted = intents(catalogue.truth, 30, seed=5)
    model = ShopperModel(k=10, noise=0.05)
    with TestClient(create_app(text_stack.settings)) as c:
        logs = simulate_text(c, wanted, catalogue.truth, sessions=4, per_session=5, seed=6,
                             model=model)  # fmt: skip
    assert all(log.failed_queries == 0 and len(log.impressions) == 5 for log in logs)
    asked = [q for log in logs for q, _ in log.searches]
    assert all(isinstance(q, TextQuestion) and q.text for q in asked)
    clicks = [c for log in logs for c in log.clicks]
    assert clicks and sum(rel for *_, rel in clicks) / len(clicks) > 0.5
    imp = clicks[0][0]
    impression = read_topic(text_stack, text_stack.settings.impressions_topic)(imp)[0]
    assert isinstance(impression, SearchImpression) and impression.query.kind == "text"
    typed = {
        i: q.text for log in logs for i, (q, _) in zip(log.impressions, log.searches, strict=True)
    }
    assert impression.query.text == typed[imp].strip()
