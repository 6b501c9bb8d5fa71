"""SIMULATED text shoppers over a catalogue with colour (not real users, not real products).

The catalogue: SYNTHETIC garments (drawn silhouettes with known category, colours, pattern,
sleeves, neckline and length: training/synthetic_garments.py) beside Fashion-MNIST photos
(real Zalando photos, grey, labelled by category only). Titles name the category and at most
one other fact; what else a product is, the pipeline has to see (tags, colour, embedding).
Every product's ground truth stays with the simulator, hidden from the system.

A shopper's intent is a category plus zero to three facts drawn from a real product's truth,
typed in words (bench/wording.py): the relevance of a product to it is
    r = [same category] * (0.5 + 0.5 * share of the intent's other facts it has)
(1 for a category-only intent), and a result is *relevant* when r == 1. Shoppers search the
real ``POST /v1/search/text`` and click through ``POST /v1/interactions`` with the image
shoppers' position bias and noise (bench/simulator.py).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
from PIL import Image

from bench.simulator import Ask, Http, SessionLog, ShopperModel, plan_session, run_session
from bench.wording import MODIFIERS, NOUNS, Split, express
from schemas.events import ImageRef, ProductUpsert
from training.datasets import CLASSES, load_split
from training.synthetic_garments import make_garment

SYNTHETIC_FIELDS = ["title", "brand", "price", "currency"]
MAX_FACTS = 3


@dataclass(frozen=True)
class TextCatalogue:
    events: list[ProductUpsert]
    truth: dict[str, frozenset[str]]  # product id -> taxonomy keys it really has (hidden)


@dataclass(frozen=True)
class Intent:
    keys: tuple[str, ...]  # the category key first

    @property
    def category(self) -> str:
        return self.keys[0].split(".", 1)[1]


def _png_base64(image: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _title(truth: Sequence[str], rng: np.random.Generator) -> str:
    """The category's name and at most one other fact, as a shop would title it."""
    category = next(k for k in truth if k.startswith("category."))
    facts = [k for k in truth if k in MODIFIERS]
    words = [NOUNS[category].canonical]
    if facts and rng.random() < 0.7:
        words.insert(0, MODIFIERS[facts[int(rng.integers(len(facts)))]].canonical)
    return " ".join(words).capitalize()


def garment_event(
    pid: str, image: np.ndarray, category: str, title: str, rng: np.random.Generator
) -> ProductUpsert:
    return ProductUpsert(
        product_id=pid,
        version=1,
        title=title,
        brand="synthetic-brand",
        category=category,
        price=Decimal(int(rng.integers(500, 20000))) / 100,
        currency="EUR",
        image=ImageRef(data_base64=_png_base64(image)),
        synthetic_fields=SYNTHETIC_FIELDS,
    )


def text_catalogue(garments: int, photos: int, seed: int = 0) -> TextCatalogue:
    """``garments`` SYNTHETIC garments and ``photos`` Fashion-MNIST train photos (both named
    as such in their product ids), reproducible from ``seed``."""
    rng = np.random.default_rng([seed, 16])
    events, truth = [], {}
    for i in range(garments):
        g = make_garment(rng)
        keys = frozenset(k for k in g.attributes if k in NOUNS or k in MODIFIERS)
        category = next(k for k in keys if k.startswith("category.")).split(".", 1)[1]
        pid = f"synthetic-garment-{i:05d}"
        events.append(garment_event(pid, g.image, category, _title(sorted(keys), rng), rng))
        truth[pid] = keys
    images, labels = load_split("train")
    for idx in np.sort(rng.permutation(len(images))[:photos]):
        category = CLASSES[int(labels[idx])]
        pid = f"fmnist-{int(idx):05d}"
        title = f"Synthetic title: {NOUNS[f'category.{category}'].canonical} #{int(idx)}"
        events.append(garment_event(pid, images[idx], category, title, rng))
        truth[pid] = frozenset({f"category.{category}"})
    return TextCatalogue(events, truth)


def intents(truth: Mapping[str, frozenset[str]], n: int, seed: int) -> list[Intent]:
    """``n`` intents, each seeded by a real product's truth: its category and up to three of
    its facts (one colour at most), so every intent has at least one relevant product."""
    rng = np.random.default_rng([seed, 17])
    ids = sorted(truth)
    out = []
    for _ in range(n):
        keys = sorted(truth[ids[int(rng.integers(len(ids)))]])
        category = next(k for k in keys if k.startswith("category."))
        facts = [k for k in keys if k in MODIFIERS]
        colours = [k for k in facts if k.startswith("colour.")]
        if len(colours) > 1:
            keep = colours[int(rng.integers(len(colours)))]
            facts = [k for k in facts if not k.startswith("colour.") or k == keep]
        m = int(rng.integers(0, min(MAX_FACTS, len(facts)) + 1))
        picked = [facts[i] for i in sorted(rng.choice(len(facts), m, replace=False))]
        out.append(Intent((category, *picked)))
    return out


def text_relevance(intent: Intent, keys: frozenset[str]) -> float:
    if intent.keys[0] not in keys:
        return 0.0
    facts = intent.keys[1:]
    if not facts:
        return 1.0
    return 0.5 + 0.5 * sum(k in keys for k in facts) / len(facts)


@dataclass(frozen=True)
class TextQuestion:
    """One SIMULATED text search: the hidden intent and the words typed for it."""

    intent: Intent
    text: str


def simulate_text(
    http: Http,
    intents_: Sequence[Intent],
    truth: Mapping[str, frozenset[str]],
    sessions: int,
    per_session: int,
    split: Split = "train",
    seed: int = 0,
    model: ShopperModel | None = None,
) -> list[SessionLog]:
    """``sessions`` SIMULATED text shoppers through the real API, each typing
    ``per_session`` intents in ``split`` wording; reproducible from ``seed``."""
    model = model or ShopperModel()
    logs = []
    for s in range(sessions):
        label, rng, picked = plan_session(seed, s, len(intents_), per_session)
        asks = []
        for i in picked:
            intent = intents_[int(i)]
            question = TextQuestion(intent, express(intent.keys, split, rng))

            def judge(result: dict[str, object], intent: Intent = intent) -> float:
                return text_relevance(intent, truth.get(str(result["product_id"]), frozenset()))

            asks.append(
                Ask(
                    "/v1/search/text",
                    {"json": {"query": question.text, "k": model.k}},
                    judge,
                    question,
                )
            )
        logs.append(run_session(http, f"text-{label}", asks, rng, model))
    return logs
