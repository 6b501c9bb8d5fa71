"""`stylestream train attributes`: the data, then the box regressor, then the tagger on features
from the served image path (the regressor's boxes included), so training and serving agree.

Data: Fashion-MNIST's train split (real photos; categories) and SYNTHETIC garments (every
model attribute and the item's box). Held-out data for `stylestream eval attributes` comes from
Fashion-MNIST's test split and synthetic seeds never used here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from processors.detector import RegionFinder
from processors.products import Embedder, describe_images
from processors.roi import Box
from training.datasets import CLASSES, load_split, to_rgb
from training.detector import BoxSample, fashion_mnist_box, train_detector
from training.synthetic_garments import garments
from training.tagger import ATTRIBUTE_GROUPS, LabelledSet, label_rows, train_tagger

# Seeds of the synthetic sets: distinct, so no scene is in two of them.
SEED_DETECTOR, SEED_TRAIN, SEED_TEST = 11, 12, 13


@dataclass(frozen=True)
class Sizes:
    fashion_mnist: int = 6000
    synthetic: int = 4000
    detector_scenes: int = 3000
    detector_fashion_mnist: int = 500
    detector_epochs: int = 20
    tagger_epochs: int = 40
    val_fraction: float = 0.15


@dataclass(frozen=True)
class Examples:
    images: list[np.ndarray]
    keys: list[list[str]]  # taxonomy keys known to hold
    groups: list[tuple[str, ...]]  # attribute groups labelled (absent keys are negatives)
    boxes: list[Box]
    source: str

    def __add__(self, other: Examples) -> Examples:
        return Examples(
            self.images + other.images,
            self.keys + other.keys,
            self.groups + other.groups,
            self.boxes + other.boxes,
            "mixed",
        )

    @property
    def sources(self) -> list[str]:
        return [self.source] * len(self.images)


def fashion_mnist_examples(split: str, n: int, seed: int, *, from_end: bool = False) -> Examples:
    """``n`` photos of a seeded permutation: its first ``n``, or with ``from_end`` its last
    ``n`` (training takes those, so the demo catalogue, the same permutation's first
    photos, is never trained on)."""
    images, labels = load_split(split)
    order = np.random.default_rng(seed).permutation(len(images))
    picked = np.sort(order[-n:] if from_end else order[:n])
    return Examples(
        [to_rgb(images[i]) for i in picked],
        [[f"category.{CLASSES[int(labels[i])]}"] for i in picked],
        [() for _ in picked],
        [fashion_mnist_box(images[i]) for i in picked],
        "fashion-mnist",
    )


def synthetic_examples(n: int, seed: int) -> Examples:
    made = list(garments(n, seed))
    return Examples(
        [g.image for g in made],
        [list(g.attributes) for g in made],
        [ATTRIBUTE_GROUPS for _ in made],
        [Box(*g.box) for g in made],
        "synthetic",
    )


def featurise(
    examples: Examples, embedder: Embedder, finder: RegionFinder, sources: Sequence[str]
) -> tuple[LabelledSet, list[Box]]:
    """Features through the served path, in chunks (bounded memory); also the boxes found."""
    vectors, colours, boxes = [], [], []
    for start in range(0, len(examples.images), 512):
        described = describe_images(examples.images[start : start + 512], embedder, finder)
        vectors.append(described.vectors)
        colours.append(described.colour_matrix)
        boxes += [r.box for r in described.regions]
    category, attributes, known = label_rows(examples.keys, examples.groups)
    return (
        LabelledSet(
            np.concatenate(vectors), np.concatenate(colours), category, attributes, known,
            list(sources),
        ),
        boxes,
    )  # fmt: skip


def train_attributes(
    models_dir: Path,
    embedder: Embedder,
    sizes: Sizes = Sizes(),
    *,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> tuple[Path, Path]:
    """Train and export the box regressor and the tagger; returns their paths."""
    log(f"detector: {sizes.detector_scenes} synthetic scenes + Fashion-MNIST photos")
    scenes = synthetic_examples(sizes.detector_scenes, SEED_DETECTOR) + fashion_mnist_examples(
        "train", sizes.detector_fashion_mnist, seed, from_end=True
    )
    detector = train_detector(
        [BoxSample(img, box) for img, box in zip(scenes.images, scenes.boxes, strict=True)],
        models_dir,
        epochs=sizes.detector_epochs,
        seed=seed,
        log=log,
    )
    finder = RegionFinder(detector)
    fmnist = fashion_mnist_examples("train", sizes.fashion_mnist, seed, from_end=True)
    synthetic = synthetic_examples(sizes.synthetic, SEED_TRAIN)
    data = fmnist + synthetic
    log(f"tagger: featurising {len(data.images)} images through the served path")
    labelled, _ = featurise(data, embedder, finder, fmnist.sources + synthetic.sources)
    order = np.random.default_rng(seed).permutation(len(data.images))
    n_val = int(len(order) * sizes.val_fraction)
    tagger = train_tagger(
        labelled.subset(order[n_val:]),
        labelled.subset(order[:n_val]),
        models_dir,
        embedding_model=embedder.model_version,
        detector_model=finder.model_version,
        epochs=sizes.tagger_epochs,
        seed=seed,
        log=log,
    )
    return detector, tagger
