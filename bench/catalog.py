"""Fashion-MNIST as a product catalogue. The photos are real (Zalando); titles, brands, prices
and currency are invented, and every event names them in ``synthetic_fields``.

Training images form the catalogue; test images are never in it: they are the held-out queries.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np
from PIL import Image
from pydantic import BaseModel

from bench.stylist import generate_outfits, outfit_events, stylist_catalogue
from config.settings import Settings
from processors.embedding import base_model_path
from schemas.events import ImageRef, ProductUpsert
from schemas.outfits import OutfitUpsert
from training.datasets import CLASSES, load_split
from training.export import export_base_model

SYNTHETIC_FIELDS = ["title", "brand", "price", "currency"]
SYNTHETIC_BRANDS = tuple(f"synthetic-brand-{i}" for i in range(12))


@dataclass(frozen=True)
class Catalogue:
    events: list[ProductUpsert]
    images: np.ndarray  # (n, 28, 28) uint8, aligned with events
    labels: np.ndarray


@dataclass(frozen=True)
class Queries:
    images: np.ndarray
    labels: np.ndarray
    paths: list[Path]


def _write_png(array: np.ndarray, path: Path) -> None:
    if not path.exists():
        Image.fromarray(array, mode="L").save(path)


def image_roots(settings: Settings, out_dir: Path) -> list[Path]:
    """The settings' allowed image roots plus a catalogue's image folder: its events name
    their photos by path, and workers read local files only inside allowed roots."""
    return [*settings.allowed_image_roots, (out_dir / "images").resolve()]


def with_image_roots(settings: Settings, out_dir: Path) -> Settings:
    return settings.model_copy(update={"allowed_image_roots": image_roots(settings, out_dir)})


def roots_text(settings: Settings, out_dir: Path) -> str:
    """The same as a setting's text (JSON), for a child process's environment."""
    return json.dumps([str(p) for p in image_roots(settings, out_dir)])


def roots_env(settings: Settings, out_dir: Path) -> dict[str, str]:
    return {"STYLESTREAM_ALLOWED_IMAGE_ROOTS": roots_text(settings, out_dir)}


def fashion_mnist_catalogue(out_dir: Path, n: int, version: int = 1, seed: int = 0) -> Catalogue:
    images, labels = load_split("train")
    if not 0 < n <= len(images):
        raise ValueError(f"n must be in 1..{len(images)}")
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.permutation(len(images))[:n])
    image_dir = out_dir / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    events = []
    for idx in picked:
        path = image_dir / f"train-{idx:05d}.png"
        _write_png(images[idx], path)
        category = CLASSES[int(labels[idx])]
        events.append(
            ProductUpsert(
                product_id=f"fmnist-{idx:05d}",
                version=version,
                title=f"Synthetic title: {category} #{idx}",
                brand=SYNTHETIC_BRANDS[int(rng.integers(len(SYNTHETIC_BRANDS)))],
                category=category,
                price=Decimal(int(rng.integers(500, 20000))) / 100,
                currency="EUR",
                image=ImageRef(path=str(path.resolve())),
                synthetic_fields=SYNTHETIC_FIELDS,
            )
        )
    return Catalogue(events, images[picked], labels[picked])


@dataclass(frozen=True)
class OutfitCatalogue:
    products: list[ProductUpsert]  # SYNTHETIC garments, then Fashion-MNIST photos
    outfits: list[OutfitUpsert]  # SIMULATED


def outfit_catalogue(
    out_dir: Path, garments: int, photos: int, outfits: int, seed: int = 0
) -> OutfitCatalogue:
    """The SIMULATED stylist's catalogue as product events (each garment drawn in a scene of
    its own, saved as a PNG) beside Fashion-MNIST photos, and its outfits over them."""
    photo_cat = fashion_mnist_catalogue(out_dir, photos, seed=seed) if photos else None
    pairs = [(e.product_id, e.category) for e in photo_cat.events] if photo_cat else []
    cat = stylist_catalogue(garments, pairs, seed)
    image_dir = out_dir / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 79])
    products = []
    for n, (pid, design) in enumerate(cat.designs.items()):
        path = image_dir / f"{pid}.png"  # always drawn: another seed, another design
        Image.fromarray(design.render(seed * 100_000 + n).image).save(path)
        products.append(
            ProductUpsert(
                product_id=pid,
                version=1,
                title=f"Synthetic garment: {design.colour} {design.pattern} {design.kind}",
                brand=SYNTHETIC_BRANDS[int(rng.integers(len(SYNTHETIC_BRANDS)))],
                category=design.category().split(".", 1)[1],
                price=Decimal(int(rng.integers(500, 20000))) / 100,
                currency="EUR",
                image=ImageRef(path=str(path.resolve())),
                synthetic_fields=[*SYNTHETIC_FIELDS, "image"],
            )
        )
    products += photo_cat.events if photo_cat else []
    return OutfitCatalogue(products, outfit_events(generate_outfits(cat, outfits, seed)))


def held_out_queries(out_dir: Path, n: int, seed: int = 0) -> Queries:
    images, labels = load_split("t10k")
    rng = np.random.default_rng(seed + 1)
    picked = np.sort(rng.permutation(len(images))[: min(n, len(images))])
    query_dir = out_dir / "queries"
    query_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for idx in picked:
        path = query_dir / f"t10k-{idx:05d}-{CLASSES[int(labels[idx])]}.png"
        _write_png(images[idx], path)
        paths.append(path)
    return Queries(images[picked], labels[picked], paths)


def write_jsonl(events: Sequence[BaseModel], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for e in events:
            f.write(json.dumps(e.model_dump(mode="json", exclude_none=True)) + "\n")


def ensure_model(settings: Settings) -> None:
    """The ONNX base model, exported once if missing (torch: the [train] extra)."""
    if base_model_path(settings.models_path, settings.image_size).exists():
        return
    try:
        export_base_model(settings.models_path, settings.image_size)
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError(
            "the ONNX model is missing and torch is not installed: "
            "pip install -e '.[train]' then `stylestream model export`"
        ) from exc
