"""A SIMULATED stylist (issue 17): compatible and incompatible outfits over a catalogue of
SYNTHETIC garments and Fashion-MNIST photos, labelled by hidden, visual rules with label noise.
Not real outfits and not real stylists: every outfit it makes has source ``simulated``.

The rules read only what a photo shows (the garments' drawn facts; a Fashion-MNIST photo is a
plain grey item of its category):
- colour harmony: neutrals (black, white, grey, navy, beige, brown) go with anything; two
  brights go together when they are one colour, neighbours on the colour wheel or opposite on
  it, and clash two steps apart; three or more brights are too many;
- formality: each item's pattern and cut make it more or less formal, and an outfit whose items
  are far apart in formality does not hold; two patterned items clash;
- season: long sleeves, full length, outerwear and dark colours lean winter, sleeveless, short
  cuts and sandals summer; an outfit mixing both does not hold;
- one item per role, a dress instead of top and bottom.
Outfits scoring clearly above or below the line are kept (labelled compatible or not), then a
share of labels is flipped (the noise) and each label gets a confidence from its margin.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from bench.modify_data import Design, design_of
from schemas.outfits import OutfitItem, OutfitUpsert

NEUTRALS = frozenset({"black", "white", "grey", "navy", "beige", "brown"})
WHEEL = ("red", "orange", "yellow", "green", "blue", "purple", "pink")  # cyclic
DARK = frozenset({"black", "navy", "brown", "grey"})
PATTERN_FORMALITY = {"solid": 0.8, "striped": 0.6, "checked": 0.35, "dotted": 0.25,
                     "colour-block": 0.1}  # fmt: skip
ROLE_OF_KIND = {"top": "top", "trousers": "bottom", "skirt": "bottom", "dress": "dress",
                "outerwear": "outer", "shoes": "shoes", "bag": "bag"}  # fmt: skip
# Fashion-MNIST classes as the stylist sees them: role, season lean
PHOTO_ROLES = {"t-shirt-top": ("top", 0.5), "trouser": ("bottom", 0.0),
               "pullover": ("top", -0.5), "dress": ("dress", 0.0), "coat": ("outer", -1.0),
               "sandal": ("shoes", 1.0), "shirt": ("top", 0.0), "sneaker": ("shoes", 0.0),
               "bag": ("bag", 0.0), "ankle-boot": ("shoes", -1.0)}  # fmt: skip
ALL_KINDS = tuple(ROLE_OF_KIND)
MARGIN = 0.75  # kept outfits score at least this far from the line (0)


@dataclass(frozen=True)
class Piece:
    """A catalogue item as the stylist sees it."""

    product_id: str
    role: str
    colour: str
    pattern: str
    formality: float
    season: float  # -1 winter .. +1 summer
    design: Design | None = None  # a SYNTHETIC garment's facts (None: a photo)


def piece_of(product_id: str, design: Design) -> Piece:
    formality = PATTERN_FORMALITY[design.pattern]
    formality += {"maxi": 0.2, "mini": -0.2, "full-length": 0.15, "shorts": -0.35}.get(
        design.length or "", 0.0
    )
    formality += {"long": 0.1, "sleeveless": -0.1}.get(design.sleeve or "", 0.0)
    formality += 0.1 if design.neckline in ("v-neck", "turtleneck") else 0.0
    season = 0.0
    season += {"long": -0.5, "sleeveless": 0.6, "short": 0.3}.get(design.sleeve or "", 0.0)
    season += {"full-length": -0.3, "maxi": -0.3, "shorts": 0.7, "mini": 0.5}.get(
        design.length or "", 0.0
    )
    season += -0.8 if design.kind == "outerwear" else 0.0
    season += -0.3 if design.colour in DARK else (0.3 if design.colour not in NEUTRALS else 0.0)
    formality = float(np.clip(formality, 0, 1))
    season = float(np.clip(season, -1, 1))
    role = ROLE_OF_KIND[design.kind]
    return Piece(product_id, role, design.colour, design.pattern, formality, season, design)


def photo_piece(product_id: str, category: str) -> Piece:
    role, season = PHOTO_ROLES[category]
    return Piece(product_id, role, "grey", "solid", 0.6, season)


def _wheel_step(a: str, b: str) -> int:
    i, j = WHEEL.index(a), WHEEL.index(b)
    d = abs(i - j)
    return min(d, len(WHEEL) - d)


def colour_score(colours: Sequence[str]) -> float:
    brights = sorted({c for c in colours if c not in NEUTRALS})
    if len(brights) >= 3:
        return -1.5 * (len(brights) - 2)
    if len(brights) < 2:
        return 0.5
    step = _wheel_step(*brights)
    return {1: 0.8, 2: -1.5, 3: 0.6}.get(step, 0.4)


def hidden_score(pieces: Sequence[Piece]) -> float:
    """Positive: compatible. Never shown to a model: labels are drawn from it."""
    score = colour_score([p.colour for p in pieces])
    formality = [p.formality for p in pieces]
    score -= 3.0 * max(0.0, max(formality) - min(formality) - 0.35)
    patterned = sum(p.pattern != "solid" for p in pieces)
    score -= 1.2 * max(0, patterned - 1)
    seasons = [p.season for p in pieces]
    score -= 1.5 * max(0.0, max(seasons) - min(seasons) - 0.8)
    return float(score)


@dataclass(frozen=True)
class SimulatedOutfit:
    outfit_id: str
    pieces: tuple[Piece, ...]
    compatible: bool  # the label, noise included
    truth: bool  # the hidden rules' verdict
    confidence: float

    @property
    def product_ids(self) -> list[str]:
        return [p.product_id for p in self.pieces]


@dataclass
class StylistCatalogue:
    pieces: list[Piece]
    designs: dict[str, Design] = field(default_factory=dict)

    def by_role(self, ids: set[str] | None = None) -> dict[str, list[Piece]]:
        out: dict[str, list[Piece]] = {}
        for p in self.pieces:
            if ids is None or p.product_id in ids:
                out.setdefault(p.role, []).append(p)
        return out


def random_garment(rng: np.random.Generator, kind: str) -> Design:
    return design_of(rng, kind, solid_share=0.45)


def stylist_catalogue(
    garments: int, photos: Sequence[tuple[str, str]] = (), seed: int = 0
) -> StylistCatalogue:
    """``garments`` SYNTHETIC garment designs of every kind (shoes and bags included), beside
    ``photos``: (product id, Fashion-MNIST category) pairs."""
    rng = np.random.default_rng([seed, 61])
    pieces, designs = [], {}
    for i in range(garments):
        kind = ALL_KINDS[i % len(ALL_KINDS)]
        design = random_garment(rng, kind)
        pid = f"synthetic-garment-{i:05d}"
        designs[pid] = design
        pieces.append(piece_of(pid, design))
    pieces += [photo_piece(pid, category) for pid, category in photos]
    return StylistCatalogue(pieces, designs)


TEMPLATES = (("top", "bottom", "shoes"), ("dress", "shoes"))


def _draw(rng: np.random.Generator, pools: dict[str, list[Piece]]) -> tuple[Piece, ...] | None:
    roles = list(TEMPLATES[int(rng.integers(len(TEMPLATES)))])
    if rng.random() < 0.5:
        roles.append("bag")
    if rng.random() < 0.3:
        roles.append("outer")
    if any(not pools.get(r) for r in roles):
        return None
    return tuple(pools[r][int(rng.integers(len(pools[r])))] for r in roles)


def generate_outfits(
    catalogue: StylistCatalogue,
    n: int,
    seed: int = 0,
    noise: float = 0.1,
    ids: set[str] | None = None,
    prefix: str = "simulated-outfit",
) -> list[SimulatedOutfit]:
    """``n`` outfits over the items ``ids`` (all when None), half compatible by the hidden
    rules; then a ``noise`` share of labels flipped."""
    rng = np.random.default_rng([seed, 67])
    pools = catalogue.by_role(ids)
    want = {True: n - n // 2, False: n // 2}
    out: list[SimulatedOutfit] = []
    for _ in range(n * 400):
        if not any(want.values()):
            break
        pieces = _draw(rng, pools)
        if pieces is None:
            break
        score = hidden_score(pieces)
        if abs(score) < MARGIN or not want[score > 0]:
            continue
        truth = score > 0
        want[truth] -= 1
        flipped = bool(rng.random() < noise)
        confidence = float(np.clip(0.5 + 0.25 * abs(score), 0.5, 0.99))
        out.append(SimulatedOutfit(f"{prefix}-{len(out):06d}", pieces, truth != flipped, truth,
                                   round(confidence, 3)))  # fmt: skip
    return out


@dataclass(frozen=True)
class OutfitSplits:
    labelled: list[SimulatedOutfit]  # training outfits whose labels a model may read
    unlabelled: list[SimulatedOutfit]  # training outfits without labels (their items: the pool)
    test: list[SimulatedOutfit]  # only items never in a training outfit
    train_items: set[str]  # what training outfits are drawn over
    test_items: set[str]
    image_only: set[str] = field(default_factory=set)  # in no outfit: unlabelled images alone


def split_outfits(
    catalogue: StylistCatalogue,
    train_outfits: int,
    test_outfits: int,
    labelled_share: float,
    seed: int = 0,
    noise: float = 0.1,
    image_only_share: float = 0.0,
) -> OutfitSplits:
    """Items split first (a fifth held out, per role), so no test item is ever seen in
    training; training outfits drawn from the rest, ``labelled_share`` of them labelled;
    ``image_only_share`` of the rest in no outfit at all (a catalogue's unlabelled images)."""
    rng = np.random.default_rng([seed, 71])
    train_items: set[str] = set()
    test_items: set[str] = set()
    image_only: set[str] = set()
    for pieces in catalogue.by_role().values():
        order = rng.permutation(len(pieces))
        cut = max(1, len(pieces) // 5)
        alone = cut + int(image_only_share * (len(pieces) - cut))
        test_items |= {pieces[i].product_id for i in order[:cut]}
        image_only |= {pieces[i].product_id for i in order[cut:alone]}
        train_items |= {pieces[i].product_id for i in order[alone:]}
    train = generate_outfits(catalogue, train_outfits, seed, noise, train_items, "sim-train")
    test = generate_outfits(catalogue, test_outfits, seed + 1, 0.0, test_items, "sim-test")
    order = rng.permutation(len(train))
    k = round(labelled_share * len(train))
    labelled = [train[i] for i in sorted(order[:k])]
    unlabelled = [train[i] for i in sorted(order[k:])]
    return OutfitSplits(labelled, unlabelled, test, train_items, test_items, image_only)


@dataclass(frozen=True)
class Blank:
    """Fill in the blank: an outfit with one item hidden and four candidates of its role."""

    outfit: SimulatedOutfit
    hidden: int  # which piece is the blank
    candidates: tuple[str, ...]  # product ids; ``answer`` among them
    answer: str


def _look(p: Piece) -> tuple[bool, bool]:
    return p.design is None, p.pattern == "solid"


def fitb_questions(
    catalogue: StylistCatalogue, test: Sequence[SimulatedOutfit], seed: int = 0
) -> list[Blank]:
    """For each compatible test outfit, one blank with three wrong candidates of the same role
    and look (photo or garment, plain or patterned) from the test items, each making the
    outfit incompatible by the hidden rules."""
    rng = np.random.default_rng([seed, 73])
    items = {pid for o in test for pid in o.product_ids}
    pools = catalogue.by_role(items)
    out = []
    for outfit in test:
        if not outfit.truth:
            continue
        hidden = int(rng.integers(len(outfit.pieces)))
        answer = outfit.pieces[hidden]
        rest = [p for i, p in enumerate(outfit.pieces) if i != hidden]
        # distractors like the answer in what needs no outfit to see (photo or garment, plain
        # or patterned), so only the outfit around the blank tells them apart
        wrong = [
            p
            for p in pools.get(answer.role, [])
            if p.product_id != answer.product_id
            and _look(p) == _look(answer)
            and hidden_score([*rest, p]) < 0
        ]
        if len(wrong) < 3:
            continue
        picks = [wrong[int(i)] for i in rng.choice(len(wrong), 3, replace=False)]
        candidates = [answer.product_id, *(p.product_id for p in picks)]
        rng.shuffle(candidates)
        out.append(Blank(outfit, hidden, tuple(candidates), answer.product_id))
    return out


def outfit_events(outfits: Sequence[SimulatedOutfit], version: int = 1) -> list[OutfitUpsert]:
    """The stylist's outfits as events for ``outfits.v1``: source ``simulated``, titled so."""
    return [
        OutfitUpsert(
            outfit_id=o.outfit_id,
            version=version,
            items=[OutfitItem(product_id=p.product_id, role=p.role) for p in o.pieces],  # type: ignore[arg-type]
            label="compatible" if o.compatible else "incompatible",
            label_confidence=o.confidence,
            source="simulated",
            title="SIMULATED outfit",
        )
        for o in outfits
    ]
