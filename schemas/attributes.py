"""The fashion attribute taxonomy: a vocabulary whose combinations describe styles.

Every attribute has a namespaced key (``group.value``, unique across groups), a display name,
a group and a description, plus where its value comes from:
- ``model``: predicted from the image by the attribute tagger (trained on labelled data);
- ``derived``: follows from another attribute (the department from the category);
- ``catalogue``: no image model here predicts it; platform teams supply it in product events.

``TAXONOMY_V1`` is frozen: migration 0003 seeds Postgres from it. A new version adds a new
tuple and a migration; keys are never reused with another meaning.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

TAXONOMY_VERSION = 1


class Source(StrEnum):
    MODEL = "model"
    DERIVED = "derived"
    CATALOGUE = "catalogue"


@dataclass(frozen=True)
class Attribute:
    key: str
    name: str
    group: str
    description: str
    source: Source
    parent: str | None = None  # for categories: their department's key

    @property
    def value(self) -> str:
        return self.key.split(".", 1)[1]


@dataclass(frozen=True)
class Group:
    key: str
    name: str
    description: str
    exclusive: bool  # at most one value per product (a category) or several (colours)
    applies_to: tuple[str, ...] = ()  # departments it describes; empty: every department


GROUPS: tuple[Group, ...] = (
    Group("category", "Category", "What the item is", True),
    Group("department", "Department", "The shop section a category belongs to", True),
    Group("colour", "Colour", "Named colours covering a visible share of the item", False),
    Group("pattern", "Pattern", "The surface pattern of the item", True),
    Group(
        "neckline",
        "Neckline",
        "The shape of the neck opening",
        True,
        ("department.tops", "department.dresses"),
    ),
    Group(
        "sleeve",
        "Sleeve length",
        "How far the sleeves reach",
        True,
        ("department.tops", "department.dresses", "department.outerwear"),
    ),
    Group(
        "length",
        "Garment length",
        "Where the garment ends on the body",
        True,
        ("department.dresses", "department.bottoms"),
    ),
    Group("material", "Material", "The main fabric", False),
    Group("fit", "Fit", "How the garment sits on the body", True),
    Group("closure", "Closure", "How the garment fastens", False),
    Group("style", "Style", "The overall look", False),
    Group("occasion", "Occasion", "When it is worn", False),
    Group("season", "Season", "The seasons it suits", False),
)
GROUP_BY_KEY = {g.key: g for g in GROUPS}

_M, _D, _C = Source.MODEL, Source.DERIVED, Source.CATALOGUE


def _a(
    group: str, value: str, name: str, description: str, source: Source, parent: str = ""
) -> Attribute:
    return Attribute(f"{group}.{value}", name, group, description, source, parent or None)


_DEPARTMENTS = (
    ("tops", "Tops", "Upper-body garments worn as a single layer"),
    ("dresses", "Dresses", "One-piece garments covering torso and legs"),
    ("bottoms", "Bottoms", "Trousers, shorts and skirts"),
    ("outerwear", "Outerwear", "Coats and jackets worn over other clothes"),
    ("footwear", "Footwear", "Shoes, sandals and boots"),
    ("bags", "Bags", "Handbags, totes and backpacks"),
)
_CATEGORIES = (
    ("t-shirt-top", "T-shirt / top", "A knitted top, short or long sleeved", "tops"),
    ("shirt", "Shirt", "A woven top with a collar and front opening", "tops"),
    ("pullover", "Pullover", "A long-sleeved knitted top pulled over the head", "tops"),
    ("dress", "Dress", "A one-piece garment for the torso and legs", "dresses"),
    ("trouser", "Trousers", "Garments covering each leg separately", "bottoms"),
    ("skirt", "Skirt", "A garment hanging from the waist", "bottoms"),
    ("coat", "Coat", "Outerwear with long sleeves, usually hip length or longer", "outerwear"),
    ("sandal", "Sandal", "An open shoe held by straps", "footwear"),
    ("sneaker", "Sneaker", "A low athletic shoe", "footwear"),
    ("ankle-boot", "Ankle boot", "A boot reaching the ankle", "footwear"),
    ("bag", "Bag", "A handbag, tote or backpack", "bags"),
)
_COLOURS = (
    "black", "white", "grey", "red", "orange", "yellow", "green",
    "blue", "navy", "purple", "pink", "brown", "beige",
)  # fmt: skip
_PATTERNS = (
    ("solid", "Solid", "One colour, no pattern", _M),
    ("striped", "Striped", "Parallel bands of alternating colours", _M),
    ("checked", "Checked", "Crossing bands forming squares (gingham, plaid)", _M),
    ("dotted", "Dotted", "Regularly spaced dots (polka dots)", _M),
    ("colour-block", "Colour block", "Large areas of contrasting solid colours", _M),
    ("floral", "Floral", "Printed or woven flowers", _C),
    ("animal-print", "Animal print", "Leopard, zebra, snake and similar prints", _C),
    ("graphic", "Graphic", "A printed logo, text or picture", _C),
)
_NECKLINES = (
    ("crew", "Crew neck", "A round neckline close to the neck", _M),
    ("v-neck", "V-neck", "A neckline coming to a point at the front", _M),
    ("square", "Square neck", "A neckline with straight sides and a straight front", _M),
    ("turtleneck", "Turtleneck", "A high, folded collar around the neck", _M),
    ("scoop", "Scoop neck", "A wide, low round neckline", _C),
    ("collared", "Collared", "A shirt collar", _C),
    ("off-shoulder", "Off-shoulder", "A neckline below the shoulders", _C),
)
_SLEEVES = (
    ("sleeveless", "Sleeveless", "No sleeves", _M),
    ("short", "Short sleeves", "Sleeves ending above the elbow", _M),
    ("long", "Long sleeves", "Sleeves reaching the wrist", _M),
    ("three-quarter", "Three-quarter sleeves", "Sleeves ending between elbow and wrist", _C),
    ("cap", "Cap sleeves", "Very short sleeves covering the shoulder", _C),
)
_LENGTHS = (
    ("mini", "Mini", "Ends well above the knee", _M),
    ("knee", "Knee length", "Ends around the knee", _M),
    ("maxi", "Maxi", "Reaches the ankle", _M),
    ("shorts", "Shorts", "Trouser legs ending above the knee", _M),
    ("full-length", "Full length", "Trouser legs reaching the ankle", _M),
    ("midi", "Midi", "Ends between knee and ankle", _C),
    ("cropped", "Cropped", "Ends above the waist or the ankle", _C),
)
_CATALOGUE_GROUPS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "material": (
        ("cotton", "Cotton", "Woven or knitted cotton"),
        ("denim", "Denim", "Twill-woven cotton, usually indigo"),
        ("leather", "Leather", "Tanned animal hide"),
        ("wool", "Wool", "Sheep's wool and blends"),
        ("silk", "Silk", "Natural silk"),
        ("linen", "Linen", "Flax fibre"),
        ("polyester", "Polyester", "A synthetic fibre"),
        ("knit", "Knit", "Any knitted fabric"),
        ("suede", "Suede", "Napped leather"),
        ("canvas", "Canvas", "Heavy plain-woven fabric"),
    ),
    "fit": (
        ("slim", "Slim", "Close to the body"),
        ("regular", "Regular", "A standard cut"),
        ("relaxed", "Relaxed", "Loose without being oversized"),
        ("oversized", "Oversized", "Deliberately larger than the body"),
        ("bodycon", "Bodycon", "Tight and stretchy"),
    ),
    "closure": (
        ("buttons", "Buttons", "Fastens with buttons"),
        ("zip", "Zip", "Fastens with a zip"),
        ("pull-on", "Pull-on", "No fastening"),
        ("lace-up", "Lace-up", "Fastens with laces"),
        ("buckle", "Buckle", "Fastens with a buckle"),
        ("wrap", "Wrap", "Wraps around and ties"),
    ),
    "style": (
        ("casual", "Casual", "Relaxed everyday wear"),
        ("formal", "Formal", "Tailored, for formal events"),
        ("sporty", "Sporty", "Athletic or athleisure"),
        ("bohemian", "Bohemian", "Flowing, folk-inspired"),
        ("minimalist", "Minimalist", "Clean lines, no ornament"),
        ("vintage", "Vintage", "Styles of past decades"),
        ("streetwear", "Streetwear", "Urban, logo-led"),
        ("business", "Business", "Office wear"),
    ),
    "occasion": (
        ("everyday", "Everyday", "Daily wear"),
        ("work", "Work", "At the office"),
        ("party", "Party", "Evenings out"),
        ("wedding", "Wedding", "Weddings and ceremonies"),
        ("sport", "Sport", "Training and sport"),
        ("beach", "Beach", "Beach and pool"),
    ),
    "season": (
        ("spring", "Spring", "Mild weather"),
        ("summer", "Summer", "Hot weather"),
        ("autumn", "Autumn", "Cool weather"),
        ("winter", "Winter", "Cold weather"),
    ),
}

TAXONOMY_V1: tuple[Attribute, ...] = (
    *(_a("category", v, n, d, _M, f"department.{p}") for v, n, d, p in _CATEGORIES),
    *(_a("department", v, n, d, _D) for v, n, d in _DEPARTMENTS),
    *(_a("colour", c, c.capitalize(), f"{c.capitalize()} covers part of the item", _M)
      for c in _COLOURS),
    *(_a("pattern", v, n, d, s) for v, n, d, s in _PATTERNS),
    *(_a("neckline", v, n, d, s) for v, n, d, s in _NECKLINES),
    *(_a("sleeve", v, n, d, s) for v, n, d, s in _SLEEVES),
    *(_a("length", v, n, d, s) for v, n, d, s in _LENGTHS),
    *(_a(g, v, n, d, _C) for g, rows in _CATALOGUE_GROUPS.items() for v, n, d in rows),
)  # fmt: skip
TAXONOMY = TAXONOMY_V1


def taxonomy_rows(
    attributes: tuple[Attribute, ...] = TAXONOMY_V1, version: int = 1
) -> list[dict[str, object]]:
    """The ``attribute_taxonomy`` table's rows (schemas/tables.py) as migration 0003 seeds them."""
    return [
        {
            "key": a.key,
            "group_key": a.group,
            "name": a.name,
            "description": a.description,
            "source": a.source.value,
            "parent": a.parent,
            "position": i,
            "taxonomy_version": version,
        }
        for i, a in enumerate(attributes)
    ]


BY_KEY: dict[str, Attribute] = {a.key: a for a in TAXONOMY}
CATEGORY_KEYS: tuple[str, ...] = tuple(a.key for a in TAXONOMY if a.group == "category")


def category_key(label: str) -> str | None:
    """A catalogue category ("dress", "category.dress", "Dress") as a taxonomy key, if it is one."""
    value = label.strip().lower().removeprefix("category.")
    key = f"category.{value}"
    return key if key in BY_KEY else None


def department_of(category: str) -> str | None:
    attr = BY_KEY.get(category)
    return attr.parent if attr is not None else None


def applies(group: str, department: str | None) -> bool:
    """Whether a group describes items of a department (a sneaker has no sleeves)."""
    g = GROUP_BY_KEY[group]
    return not g.applies_to or department in g.applies_to
