"""The search API against real Postgres and Milvus (in-process ASGI client)."""

from __future__ import annotations

import base64
import http.server
import io
import threading
import time
from collections.abc import Callable

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from pydantic import SecretStr

from api.app import create_app
from api.images import UNAVAILABLE
from bench.processes import Process
from deploy.local.process import free_port
from processors.products import ProductProcessor
from schemas.events import ImageRef
from tests.events import photo, upsert
from tests.integration.conftest import Stack, generated_requests_hold, wait_for
from tests.synthetic import encode, flat_png, synthetic_garment

pytestmark = pytest.mark.services
N = 40
COLOURS = {"red": (200, 30, 40), "blue": (40, 80, 200), "green": (30, 150, 60)}


def png(i: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(photo(i)[0]).save(buf, format="PNG")
    return buf.getvalue()


def garment(name: str) -> bytes:
    return encode(synthetic_garment(colour=COLOURS[name], background=(250, 250, 250)))


@pytest.fixture(scope="module")
def stack(make_stack: Callable[..., Stack], processor: ProductProcessor) -> Stack:
    stack = make_stack(milvus_index="FLAT")
    events = [upsert(f"a{i:03d}", 1, i) for i in range(N)]
    for n, name in enumerate(COLOURS):  # synthetic garments, one per colour, priced apart
        b64 = base64.b64encode(garment(name)).decode()
        events.append(
            upsert(
                f"syn-{name}",
                1,
                0,
                category="synthetic-dress",
                price=100 + 10 * n,
                image=ImageRef(data_base64=b64),
            )
        )
    stack.write(processor, events)
    return stack


def upload(client: TestClient, data: bytes, **form: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    r = client.post("/v1/search/upload", files={"image": ("q.png", data, "image/png")}, data=form)
    return r.status_code, r.json()


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "checks": {}}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"milvus": "ok", "postgres": "ok"}


def test_readiness_fails_when_postgres_is_unreachable(stack: Stack) -> None:
    broken = stack.settings.model_copy(
        update={
            "postgres_dsn": SecretStr(f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/x")
        }
    )
    with TestClient(create_app(broken)) as c:
        r = c.get("/readyz")
    assert r.status_code == 503
    assert r.json()["checks"]["postgres"].startswith("unreachable")
    assert r.json()["checks"]["milvus"] == "ok"


def test_upload_finds_the_product_first_with_explained_scores(client: TestClient) -> None:
    code, body = upload(client, png(5), k="5", explain="true")
    assert code == 200, body
    top = body["results"][0]
    assert top["product_id"] == "a005" and top["category"] == photo(5)[1]
    assert top["score"] == pytest.approx(1.0, abs=1e-3)
    c = top["components"]
    assert c["visual"] == pytest.approx(1.0, abs=1e-3) and c["colour"] == pytest.approx(1.0)
    assert c["attributes"] == pytest.approx(1.0, abs=1e-3)  # same image, same predictions
    assert top["score"] == pytest.approx(
        c["weight_visual"] * c["visual"]
        + c["weight_colour"] * c["colour"]
        + c["weight_attributes"] * c["attributes"],
        abs=1e-5,
    )
    assert top["title"].startswith("Synthetic title") and top["currency"] == "EUR"
    assert len(body["results"]) == 5 and body["model_version"]
    scores = [r["score"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True)


def test_json_base64_matches_upload_and_paging_is_consistent(client: TestClient) -> None:
    b64 = base64.b64encode(png(9)).decode()
    full = client.post("/v1/search", json={"image_base64": b64, "k": 10}).json()["results"]
    page2 = client.post("/v1/search", json={"image_base64": b64, "k": 5, "offset": 5}).json()
    assert [r["product_id"] for r in page2["results"]] == [r["product_id"] for r in full[5:]]
    _, uploaded = upload(client, png(9), k="10")
    assert [r["product_id"] for r in uploaded["results"]] == [r["product_id"] for r in full]


def test_filters_narrow_results(client: TestClient) -> None:
    category = photo(3)[1]
    _, body = upload(client, png(3), k="50", category=category)
    assert body["results"] and all(r["category"] == category for r in body["results"])
    _, body = upload(client, garment("red"), k="10", colour="red")
    assert [r["product_id"] for r in body["results"]] == ["syn-red"]
    _, body = upload(client, garment("red"), k="10", min_price="105", max_price="125")
    assert {r["product_id"] for r in body["results"]} == {"syn-blue", "syn-green"}


def test_colour_reranks_same_shape_garments(client: TestClient) -> None:
    _, body = upload(client, garment("blue"), k="3", category="synthetic-dress", explain="true")
    ids = [r["product_id"] for r in body["results"]]
    assert ids[0] == "syn-blue"
    assert body["results"][0]["components"]["colour"] > body["results"][1]["components"]["colour"]


def test_filter_values_cannot_inject(client: TestClient) -> None:
    for evil in ['x" or category != "', "x' or 1==1 or '"]:
        code, body = upload(client, png(1), category=evil)
        assert code == 200 and body["results"] == []


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"colour": "mauve"}, "colour"),
        ({"min_price": "10", "max_price": "5"}, "min_price must not exceed max_price"),
        ({"k": "0"}, "k"),
        ({"k": "1000"}, "k"),
        ({"min_price": "-1"}, "min_price"),
        ({"category": "bag\x01"}, "control character"),
    ],
)
def test_invalid_filters_answer_422_with_the_reason(
    client: TestClient, form: dict[str, str], message: str
) -> None:
    code, body = upload(client, png(1), **form)
    assert code == 422
    assert body["error"]["code"] == "invalid_request" and message in body["error"]["message"]


def test_bad_images_and_content_types(client: TestClient, stack: Stack) -> None:
    code, body = upload(client, b"not an image")
    assert code == 422 and body["error"]["code"] == "undecodable_image"
    code, body = upload(client, b"")
    assert code == 422
    big = b"\x89PNG" + b"0" * (stack.settings.max_image_bytes + 10)
    code, body = upload(client, big)
    assert code == 413 and body["error"]["code"] == "image_too_large"
    r = client.post("/v1/search", content=b"hello", headers={"content-type": "text/plain"})
    assert r.status_code == 415 and "application/json" in r.json()["error"]["message"]
    r = client.post("/v1/search/upload", json={"image_base64": "x"})
    assert r.status_code == 415
    r = client.post("/v1/search", json={"image_base64": "!!!"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "undecodable_image"
    r = client.post("/v1/search", json={"k": 3})
    assert r.status_code == 422 and "exactly one" in r.json()["error"]["message"]
    for url in ("http://[", "http://\ufff9/q.png"):  # found by the schemathesis test below
        r = client.post("/v1/search", json={"image_url": url})
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_image_url"
    r = client.post("/v1/search", content=b"{", headers={"content-type": "application/json"})
    assert r.status_code == 422 and "Traceback" not in r.text


def test_image_urls_refuse_private_hosts_unless_allowed(stack: Stack) -> None:
    """A loopback SSRF server: its address, a redirect to it from an allowed host and a server
    trickling one byte at a time all end in the same 422 within the fetch deadline, which says
    nothing of what resolved or answered; allowed, the same server serves the image."""
    data = png(2)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/to-private":
                self.send_response(302)
                self.send_header("Location", f"http://127.0.0.1:{server.server_port}/q.png")
                self.end_headers()
                return
            self.send_response(200)
            self.end_headers()
            if self.path == "/trickle":
                for _ in range(100):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.1)
                return
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_port
    quick = stack.settings.model_copy(update={"image_fetch_timeout_s": 1.0})
    try:
        with TestClient(create_app(quick)) as c:
            for url in (f"http://127.0.0.1:{port}/q.png", f"http://localhost:{port}/q.png"):
                r = c.post("/v1/search", json={"image_url": url})
                assert r.status_code == 422
                assert r.json()["error"] == {"code": "image_unavailable", "message": UNAVAILABLE}
        allowed = quick.model_copy(update={"api_image_hosts": ["localhost"]})
        with TestClient(create_app(allowed)) as c:
            url = f"http://localhost:{port}"
            r = c.post("/v1/search", json={"image_url": f"{url}/q.png", "k": 1})
            assert r.status_code == 200 and r.json()["results"][0]["product_id"] == "a002"
            for path in ("/to-private", "/trickle"):
                started = time.monotonic()
                r = c.post("/v1/search", json={"image_url": url + path})
                assert r.status_code == 422 and r.json()["error"]["message"] == UNAVAILABLE
                assert time.monotonic() - started < 3.0
            r = c.post("/v1/search", json={"image_url": "file:///etc/passwd"})
            assert r.status_code == 422
            assert c.get("/healthz").status_code == 200
    finally:
        server.shutdown()


def test_more_like_this_product_lookup_and_thumbnail(client: TestClient) -> None:
    body = client.get("/v1/products/a007/similar", params={"k": 5, "explain": True}).json()
    ids = [r["product_id"] for r in body["results"]]
    assert len(ids) == 5 and "a007" not in ids
    assert body["results"][0]["components"] is not None
    narrowed = client.get("/v1/products/a007/similar", params={"category": "bag"}).json()
    assert all(r["category"] == "bag" for r in narrowed["results"])
    product = client.get("/v1/products/a007").json()
    assert product["category"] == photo(7)[1] and product["synthetic_fields"]
    assert len(product["roi_box"]) == 4 and product["thumbnail_url"].endswith("/thumbnail")
    thumb = client.get(product["thumbnail_url"])
    assert thumb.headers["content-type"] == "image/webp"
    assert min(Image.open(io.BytesIO(thumb.content)).size) >= 64
    for path in ("/v1/products/nope", "/v1/products/nope/similar", "/v1/products/nope/thumbnail"):
        r = client.get(path)
        assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_product"
    r = client.get("/v1/products/bad id!")
    assert r.status_code == 422


def text(client: TestClient, **body: object) -> tuple[int, dict]:  # type: ignore[type-arg]
    r = client.post("/v1/search/text", json=body)
    return r.status_code, r.json()


def test_text_search_finds_products_by_their_words_with_explained_parts(
    client: TestClient,
) -> None:
    status, body = text(client, query="Red dress", k=5, explain=True)
    assert status == 200, body
    first = body["results"][0]
    assert first["product_id"] == "syn-red"  # both words: the category's and the colour's
    assert first["text"]["terms"] == [
        {"term": "Red dress", "weight": 1.0, "match": first["text"]["lexical"]}
    ]
    assert first["text"]["lexical"] == first["score"] > body["results"][1]["score"]
    assert body["model_version"] == "lexical-v1" and first["components"] is None
    _, dresses = text(client, query="dress", k=20, filters={"category": "synthetic-dress"})
    assert {r["product_id"] for r in dresses["results"]} == {f"syn-{c}" for c in COLOURS}
    _, paged = text(client, query="dress", k=2, offset=1, filters={"category": "synthetic-dress"})
    assert [r["product_id"] for r in paged["results"]] == [
        r["product_id"] for r in dresses["results"][1:3]
    ]


def test_text_terms_weigh_demote_and_exclude(client: TestClient) -> None:
    only = {"category": "synthetic-dress"}  # every title here says "Synthetic"
    _, demoted = text(client, terms={"dress": 1, "red": -0.5}, k=3, explain=True, filters=only)
    assert demoted["results"][-1]["product_id"] == "syn-red"
    red = demoted["results"][-1]["text"]["terms"]
    assert red[1]["term"] == "red" and red[1]["weight"] == -0.5 and red[1]["match"] > 0
    _, excluded = text(client, terms={"dress": 1, "red": -1}, k=10, filters=only)
    ids = {r["product_id"] for r in excluded["results"]}
    assert "syn-red" not in ids and {"syn-blue", "syn-green"} <= ids


@pytest.mark.parametrize(
    "body",
    [
        {"query": ""},
        {"query": "?!"},
        {"query": "x" * 257},
        {"query": "red", "terms": {"red": 1}},
        {},
        {"terms": {"heel": -1}},
        {"terms": {"red": 0}},
        {"terms": {"red": 100}},
        {"terms": {f"w{i}": 1 for i in range(17)}},
        {"query": "red", "k": 0},
        {"query": "red", "filters": {"colour": "octarine"}},
        {"query": "red", "sql": "drop"},
        {"query": "red", "filters": {"category": "\x00"}},
    ],
)
def test_bad_text_queries_are_a_clear_422(client: TestClient, body: dict) -> None:  # type: ignore[type-arg]
    status, answer = text(client, **body)
    assert status == 422, answer
    assert answer["error"]["message"]


def test_facets_page_and_metrics(client: TestClient) -> None:
    facets = client.get("/v1/facets").json()
    assert "synthetic-dress" in facets["categories"] and "red" in facets["colours"]
    assert facets["products"] == N + len(COLOURS)
    page = client.get("/")
    assert page.status_code == 200 and "StyleStream" in page.text
    assert client.get("/static/app.js").status_code == 200
    client.get("/v1/products/nope")
    metrics = client.get("/metrics").text
    assert (
        'stylestream_api_requests_total{method="GET",route="/v1/products/{product_id}",status="404"}'
        in metrics
    )
    assert "stylestream_api_request_seconds_bucket" in metrics
    assert 'stylestream_api_errors_total{route="/v1/products/{product_id}",status="404"}' in metrics


def test_openapi_contract(client: TestClient) -> None:
    """Generated requests (schemathesis, from the served OpenAPI document) never get a 5xx,
    and every response matches the document: status codes, content types and bodies."""
    assert generated_requests_hold(client, examples=25) >= {
        "/v1/search",
        "/v1/search/upload",
        "/v1/search/text",
        "/v1/search/modify",
        "/v1/products/{product_id}/similar",
        "/v1/products/{product_id}",
        "/v1/facets",
        "/readyz",
    }


def test_images_that_would_buy_memory_are_413_from_their_header(client: TestClient) -> None:
    """A 118 KB 40000x1000 PNG raised the API's memory by 2.5 GB; a 169 KB 6324x6324 RGBA PNG
    within every byte and pixel limit cost ~890 MB to decode. Both are refused before any
    pixel is decoded, and the API goes on answering."""
    for data in (flat_png(40_000, 1_000), flat_png(6_324, 6_324, "RGBA"), flat_png(100_000, 1)):
        code, body = upload(client, data)
        assert code == 413 and body["error"]["code"] == "image_too_large", body
        b64 = base64.b64encode(data).decode()
        r = client.post("/v1/search", json={"image_base64": b64})
        assert r.status_code == 413
    code, _ = upload(client, png(1))
    assert code == 200


def test_large_bodies_and_busy_clients_are_refused_before_any_work(stack: Stack) -> None:
    """A 57 MB JSON body was read and parsed whole before its 413: now it is refused from its
    length, before a byte is read; one client's burst gets 429 with Retry-After while probes
    still answer."""
    limited = stack.settings.model_copy(update={"api_rate_per_s": 1.0, "api_rate_burst": 3})
    with TestClient(create_app(limited)) as c:
        huge = b'{"image_base64": "' + b"A" * (limited.api_max_body_bytes + 10) + b'"}'
        r = c.post("/v1/search", content=huge, headers={"content-type": "application/json"})
        assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
        codes = [c.get("/v1/facets").status_code for _ in range(6)]
        assert codes[:2] == [200, 200] and codes[-1] == 429
        r = c.get("/v1/facets")
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert c.get("/healthz").status_code == 200  # the liveness probe is never limited


def test_query_images_are_decoded_a_few_at_a_time(stack: Stack) -> None:
    """Memory per API process is bounded by how many images it decodes at once: with every
    turn taken, an upload waits, then gets 503 (retry), and is served once a turn frees."""
    one = stack.settings.model_copy(
        update={"api_max_concurrent_decodes": 1, "api_decode_wait_s": 0.3}
    )
    with TestClient(create_app(one)) as c:
        state = c.app_state["api"]
        assert state.decodes.acquire(timeout=1)  # another request is decoding
        try:
            code, body = upload(c, png(1))
            assert code == 503 and body["error"]["code"] == "busy"
        finally:
            state.decodes.release()
        assert upload(c, png(1))[0] == 200


def test_concurrent_searches_share_batched_model_calls_and_each_gets_its_own_answer(
    stack: Stack,
) -> None:
    """Uploads in flight together are embedded in one batch (held 300 ms for company here),
    and each response still holds its own image's results and page."""
    patient = stack.settings.model_copy(update={"api_batch_wait_ms": 300.0})
    with TestClient(create_app(patient)) as c:
        answers: dict[int, tuple[int, dict]] = {}  # type: ignore[type-arg]

        def search(i: int) -> None:  # odd ones within their category: another index call
            form = {"category": photo(i)[1]} if i % 2 else {}
            answers[i] = upload(c, png(i), k=str(3 + i % 3), **form)

        threads = [threading.Thread(target=search, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        metrics = c.get("/metrics").text
    for i, (code, body) in answers.items():
        assert code == 200, body
        assert body["results"][0]["product_id"] == f"a{i:03d}"
        if i % 2:
            assert {r["category"] for r in body["results"]} == {photo(i)[1]}
        else:
            assert len(body["results"]) == 3 + i % 3
    assert len(answers) == 8
    count = next(
        float(line.split()[1])
        for line in metrics.splitlines()
        if line.startswith("stylestream_api_search_batch_size_count ")
    )
    assert 1 <= count < 8  # fewer model calls than searches


def test_health_answers_while_every_search_thread_waits_on_a_trickling_server(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """45 searches whose image URL trickles a byte at a time held a real API's threads and
    /healthz stopped answering (30 s timeouts); now each fetch ends at its deadline and the
    probe, on the event loop, answers throughout."""

    class Trickle(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            for _ in range(80):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.1)

        def log_message(self, *args: object) -> None:
            pass

    class Quiet(http.server.ThreadingHTTPServer):
        def handle_error(self, request: object, client_address: object) -> None:
            pass

    trickle = Quiet(("127.0.0.1", 0), Trickle)
    trickle.daemon_threads = True
    threading.Thread(target=trickle.serve_forever, daemon=True).start()
    port = free_port()
    env = stack.env() | {
        "STYLESTREAM_API_PORT": str(port),
        "STYLESTREAM_API_IMAGE_HOSTS": "localhost",
        "STYLESTREAM_IMAGE_FETCH_TIMEOUT_S": "3",
    }
    api = Process(["api"], tmp_path_factory.mktemp("api") / "api.log", env)
    base = f"http://127.0.0.1:{port}"
    slow = {"image_url": f"http://localhost:{trickle.server_port}/slow.png"}
    try:
        wait_for(lambda: api.running() and _answers(f"{base}/readyz"), timeout=90)
        with httpx.Client(base_url=base, timeout=30) as web:
            codes: list[int] = []

            def search() -> None:
                codes.append(web.post("/v1/search", json=slow).status_code)

            threads = [threading.Thread(target=search) for _ in range(45)]
            for t in threads:
                t.start()
            time.sleep(1.0)  # every search thread is now busy or queued
            for _ in range(5):
                started = time.monotonic()
                assert web.get("/healthz", timeout=2).status_code == 200
                assert time.monotonic() - started < 1.0
                time.sleep(0.5)
            for t in threads:
                t.join(60)
        assert len(codes) == 45 and set(codes) <= {422, 503}  # each ended, none a 5xx crash
        assert api.running()
    finally:
        api.stop()
        trickle.shutdown()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
