"""SIMULATED shoppers for demos, tests and evaluation: not real users and never presented as
such. Each session issues image queries through the real search API and reports clicks
through the real ``POST /v1/interactions``, so impressions and clicks take the production path.

A simulated shopper's hidden relevance of a shown product to a query:
    r = 0.8 * [same catalogue category] + 0.2 * (share of the query's attributes it carries)
Position bias: the result at position p is examined with probability ``1 / p ** bias``; an
examined result is clicked with probability ``noise + (1 - 2 * noise) * r`` (so relevant
items are sometimes skipped and irrelevant ones sometimes clicked).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from PIL import Image


class Http(Protocol):
    """The slice of httpx.Client (or FastAPI's TestClient) the simulator uses."""

    @property
    def post(self) -> Callable[..., Any]: ...


@dataclass(frozen=True)
class SimulatedQuery:
    image: np.ndarray  # uint8, grey (H, W) or RGB (H, W, 3)
    category: str  # the shopper's hidden intent: catalogue category...
    attributes: frozenset[str] = frozenset()  # ...and attributes they want


@dataclass(frozen=True)
class ShopperModel:
    position_bias: float = 1.0
    noise: float = 0.05
    k: int = 10
    max_clicks: int = 3


@dataclass
class SessionLog:
    session_id: str  # the API's, once it issued one (the simulator's label until then)
    impressions: list[str] = field(default_factory=list)
    clicks: list[tuple[str, str, int, float]] = field(default_factory=list)  # imp, pid, pos, r
    failed_queries: int = 0
    searches: list[tuple[Any, list[dict[str, Any]]]] = field(default_factory=list)  # query, page


def relevance(query: SimulatedQuery, result: dict[str, Any]) -> float:
    same = 1.0 if result.get("category") == query.category else 0.0
    if not query.attributes:
        return same
    shared = len(query.attributes & set(result.get("attributes") or [])) / len(query.attributes)
    return 0.8 * same + 0.2 * shared


def png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def clicks_by(
    results: Sequence[dict[str, Any]],
    relevance_of: Callable[[dict[str, Any]], float],
    rng: np.random.Generator,
    model: ShopperModel = ShopperModel(),
) -> list[tuple[int, dict[str, Any], float]]:
    """What a SIMULATED shopper clicks on one results page, judging each result by
    ``relevance_of``: (position, result, relevance), top to bottom, at most
    ``model.max_clicks``."""
    clicks: list[tuple[int, dict[str, Any], float]] = []
    for position, result in enumerate(results, 1):
        if len(clicks) >= model.max_clicks:
            break
        if rng.random() >= 1.0 / position**model.position_bias:
            continue  # never looked at
        rel = relevance_of(result)
        if rng.random() < model.noise + (1 - 2 * model.noise) * rel:
            clicks.append((position, result, rel))
    return clicks


def shopper_clicks(
    query: SimulatedQuery,
    results: Sequence[dict[str, Any]],
    rng: np.random.Generator,
    model: ShopperModel = ShopperModel(),
) -> list[tuple[int, dict[str, Any], float]]:
    """An image shopper's clicks (``relevance`` to their hidden intent)."""
    return clicks_by(results, lambda result: relevance(query, result), rng, model)


def plan_session(
    seed: int, session: int, n_queries: int, per_session: int
) -> tuple[str, np.random.Generator, np.ndarray]:
    """A SIMULATED session's id, its own random stream and the indices of the queries it
    asks: reproducible from (seed, session) alone, so sessions may run in any order."""
    rng = np.random.default_rng([seed, session])
    picked = rng.choice(n_queries, size=min(per_session, n_queries), replace=False)
    return f"sim-{seed}-{session}", rng, picked


@dataclass(frozen=True)
class Ask:
    """One search a SIMULATED shopper makes: the endpoint, the request (``http.post``'s
    arguments but the headers), how they judge a result, and what the log records."""

    path: str
    request: dict[str, Any]
    relevance_of: Callable[[dict[str, Any]], float]
    query: Any


def run_session(
    http: Http,
    label: str,
    asks: Sequence[Ask],
    rng: np.random.Generator,
    model: ShopperModel = ShopperModel(),
) -> SessionLog:
    """One shopper: the API issues the session on the first search; every later search and
    every click carries it back (X-Session-Id), as a browser would."""
    log = SessionLog(label)
    headers = {"X-User-Id": f"simulated-{label}"}
    for ask in asks:
        r = http.post(ask.path, **ask.request, headers=headers)
        if r.status_code != 200:
            log.failed_queries += 1
            continue
        body = r.json()
        log.session_id = headers["X-Session-Id"] = body["session_id"]
        log.impressions.append(body["impression_id"])
        log.searches.append((ask.query, body["results"]))
        for position, result, rel in clicks_by(body["results"], ask.relevance_of, rng, model):
            report = {
                "impression_id": body["impression_id"],
                "product_id": result["product_id"],
                "position": position,
            }
            if http.post("/v1/interactions", json=report, headers=headers).status_code == 202:
                log.clicks.append((body["impression_id"], result["product_id"], position, rel))
    return log


def image_ask(query: SimulatedQuery, k: int) -> Ask:
    return Ask(
        "/v1/search/upload",
        {
            "files": {"image": ("query.png", png_bytes(query.image), "image/png")},
            "data": {"k": str(k)},
        },
        lambda result: relevance(query, result),
        query,
    )


def simulate_session(
    http: Http,
    label: str,
    queries: Sequence[SimulatedQuery],
    rng: np.random.Generator,
    model: ShopperModel = ShopperModel(),
) -> SessionLog:
    """One image shopper's session."""
    return run_session(http, label, [image_ask(q, model.k) for q in queries], rng, model)


def simulate(
    http: Http,
    queries: Sequence[SimulatedQuery],
    sessions: int,
    queries_per_session: int,
    seed: int = 0,
    model: ShopperModel = ShopperModel(),
    concurrency: int = 1,
) -> list[SessionLog]:
    """``sessions`` simulated shoppers, each with ``queries_per_session`` queries drawn from
    ``queries``; reproducible from ``seed`` (given the same search results): each session has
    its own random stream, so ``concurrency`` sessions may run at once."""

    def one(s: int) -> SessionLog:
        session_id, rng, picked = plan_session(seed, s, len(queries), queries_per_session)
        return simulate_session(http, session_id, [queries[i] for i in picked], rng, model)

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        return list(pool.map(one, range(sessions)))
