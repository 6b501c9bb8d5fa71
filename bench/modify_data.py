"""SIMULATED modifier triplets over SYNTHETIC garments (not real products, not real shoppers):
a reference garment, a change of one fact in words ("in red", "with long sleeves", "without
stripes"), and the target garments that are the reference with that change.

A *design* is a garment's facts (kind, main and second colour, pattern, sleeves, neckline,
length); a rendering draws it in a scene of its own (position, scale, proportions, backdrop,
props: training/synthetic_garments.make_garment with every fact given), so a target is another
photo of the changed design, never the reference's photo recoloured. Relevance is exact: a
catalogue garment is relevant to a query when its design's facts (all but the second colour)
equal the changed design's. Besides each reference and two renderings of each target design,
the catalogue holds random designs as distractors; every reference also has its other changes
in the catalogue, so "the same, but..." has near misses.

Wording (bench/wording.py): the new value's words, training or held-out synonyms, in template
families likewise split; a change to a solid pattern may say "without <old pattern>". Some
(category, new value) combinations never appear in training: the ``unseen`` queries.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from bench.wording import MODIFIERS, Split, misspell
from processors.colour import PALETTE_NAMES
from training.synthetic_garments import (
    KINDS,
    NECKLINES,
    PATTERNS,
    SLEEVES,
    SyntheticGarment,
    make_garment,
)

CHANGES = ("colour", "pattern", "sleeve", "length")
LENGTHS = {"dress": ("mini", "knee", "maxi"), "skirt": ("mini", "knee", "maxi"),
           "trousers": ("shorts", "full-length")}  # fmt: skip
TEMPLATES: dict[Split, tuple[str, ...]] = {
    "train": ("{w}", "in {w}", "but {w}", "{w} instead"),
    "test": ("same but {w}", "make it {w}", "i'd like this {w}", "like this one, {w}"),
}
# "without <pattern>": the pattern's noun, in training wording and held out
REFUSED: dict[str, tuple[str, str]] = {
    "striped": ("stripes", "pinstripes"),
    "checked": ("checks", "gingham"),
    "dotted": ("dots", "spots"),
    "colour-block": ("colour blocks", "contrast panels"),
}
UNSEEN_SHARE = 0.15  # of (category, new value) combinations, kept out of training


@dataclass(frozen=True)
class Design:
    kind: str
    colour: str
    colour2: str
    pattern: str
    sleeve: str | None = None
    neckline: str | None = None
    length: str | None = None

    def facts(self) -> tuple[str | None, ...]:
        """What relevance compares (the second colour of a solid garment is not seen)."""
        return (self.kind, self.colour, self.pattern, self.sleeve, self.neckline, self.length)

    def render(self, scene: int) -> SyntheticGarment:
        given = {"colour": self.colour, "colour2": self.colour2, "pattern": self.pattern}
        given.update({k: v for k in ("sleeve", "neckline", "length") if (v := getattr(self, k))})
        return make_garment(np.random.default_rng([scene, 41]), self.kind, change=given)

    def category(self) -> str:
        """The taxonomy category key its rendering carries."""
        if self.kind == "top":
            return "category.pullover" if self.sleeve == "long" else "category.t-shirt-top"
        names = {"trousers": "trouser", "outerwear": "coat", "shoes": "shoes", "bag": "bag"}
        return f"category.{names.get(self.kind, self.kind)}"


def random_design(rng: np.random.Generator) -> Design:
    kind = str(KINDS[rng.integers(len(KINDS))])
    if kind == "shoes":
        kind = "top"  # shoes have no modifiable shape here: a top instead
    return design_of(rng, kind, solid_share=0.35)


def design_of(rng: np.random.Generator, kind: str, solid_share: float) -> Design:
    """Random facts for a garment of ``kind`` (``solid_share`` of them plain)."""
    a, b = (str(PALETTE_NAMES[i]) for i in rng.choice(len(PALETTE_NAMES), 2, replace=False))
    pattern = "solid" if rng.random() < solid_share else str(PATTERNS[rng.integers(len(PATTERNS))])
    sleeve = neckline = length = None
    if kind in ("top", "dress"):
        sleeve = str(SLEEVES[rng.integers(len(SLEEVES))])
        neckline = str(NECKLINES[rng.integers(len(NECKLINES))])
    if kind == "outerwear":
        sleeve = "long"
    if kind in LENGTHS:
        length = str(LENGTHS[kind][rng.integers(len(LENGTHS[kind]))])
    return Design(kind, a, b, pattern, sleeve, neckline, length)


def options(design: Design, change: str) -> list[str]:
    """The values ``change`` can take from ``design`` (none: it does not apply)."""
    if change == "colour":
        return [c for c in PALETTE_NAMES if c not in (design.colour, design.colour2)]
    if change == "pattern":
        return [p for p in PATTERNS if p != design.pattern]
    if change == "sleeve":
        return [s for s in SLEEVES if s != design.sleeve] if design.kind in ("top", "dress") else []
    return [v for v in LENGTHS.get(design.kind, ()) if v != design.length]


def changed(design: Design, change: str, value: str) -> Design:
    return replace(design, **{change: value})


def unseen(design: Design, change: str, value: str) -> bool:
    """Whether this (category, new value) combination is kept out of training."""
    key = f"{design.category()}|{change}.{value}".encode()
    return int(hashlib.sha256(key).hexdigest()[:8], 16) % 1000 < UNSEEN_SHARE * 1000


def words(design: Design, change: str, value: str, split: Split, rng: np.random.Generator) -> str:
    """The change as a SIMULATED shopper types it."""
    key = f"{change}.{value}"
    if (
        change == "pattern"
        and value == "solid"
        and design.pattern != "solid"
        and rng.random() < 0.5
    ):
        train, test = REFUSED[design.pattern]
        text = f"without {train}" if split == "train" else f"no {test} please"
    else:
        template = TEMPLATES[split][int(rng.integers(len(TEMPLATES[split])))]
        text = template.format(w=MODIFIERS[key].pick(split, rng))
    if rng.random() < 0.08:
        text = " ".join(misspell(w, rng) for w in text.split())
    return text


@dataclass(frozen=True)
class ModifyQuery:
    reference: str  # the reference garment's product id
    change: str
    value: str
    target: Design
    split: Split  # which references: train (the model learns from them) or test
    unseen: bool


@dataclass(frozen=True)
class ModifyCatalogue:
    ids: list[str]
    designs: list[Design]
    images: list[np.ndarray]
    queries: list[ModifyQuery]

    def relevance(self, queries: Sequence[ModifyQuery]) -> np.ndarray:
        """(queries, products): 1 where a product is the query's changed design."""
        facts = [d.facts() for d in self.designs]
        return np.array([[float(f == q.target.facts()) for f in facts] for q in queries])


def modify_catalogue(references: int, distractors: int, seed: int = 0) -> ModifyCatalogue:
    """``references`` SYNTHETIC reference garments (a fifth of them the test split), each with
    up to one change of every kind that applies, two renderings of every changed design, and
    ``distractors`` random SYNTHETIC designs."""
    rng = np.random.default_rng([seed, 43])
    ids: list[str] = []
    designs: list[Design] = []
    images: list[np.ndarray] = []
    queries: list[ModifyQuery] = []

    def add(pid: str, design: Design) -> None:
        ids.append(pid)
        designs.append(design)
        images.append(design.render(len(ids) + 1000 * seed).image)

    for r in range(references):
        design = random_design(rng)
        ref = f"synthetic-reference-{r:05d}"
        add(ref, design)
        split: Split = "test" if r % 5 == 4 else "train"
        for change in CHANGES:
            values = options(design, change)
            if not values:
                continue
            value = values[int(rng.integers(len(values)))]
            target = changed(design, change, value)
            for copy in range(2):
                add(f"synthetic-target-{r:05d}-{change}-{copy}", target)
            queries.append(ModifyQuery(ref, change, value, target, split,
                                       unseen(design, change, value)))  # fmt: skip
    for i in range(distractors):
        add(f"synthetic-distractor-{i:05d}", random_design(rng))
    return ModifyCatalogue(ids, designs, images, queries)
