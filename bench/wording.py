"""How SIMULATED text shoppers put an intent into words (not real queries, never presented as
such).

An intent is a set of taxonomy keys (a category and one to three of colour, pattern, sleeves,
neckline, length). Each key has words in three vocabularies: ``canonical`` (the taxonomy's own
name, as product text carries it), ``train`` synonyms and paraphrases, and ``test`` synonyms
kept out of training. Templates come in families, likewise split: a model judged on the
``test`` wording has seen neither those words nor those sentence shapes in its training
clicks. Misspellings (a dropped, doubled or swapped letter) and word order vary in both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

Split = Literal["train", "test"]


@dataclass(frozen=True)
class Words:
    canonical: str
    train: tuple[str, ...]
    test: tuple[str, ...]

    def pick(self, split: Split, rng: np.random.Generator) -> str:
        """Train wording: the canonical words a third of the time, else a train synonym; test
        wording: a held-out synonym only."""
        if split == "test":
            return str(self.test[rng.integers(len(self.test))])
        if rng.random() < 1 / 3:
            return self.canonical
        return str(self.train[rng.integers(len(self.train))])


def _w(canonical: str, train: str, test: str) -> Words:
    return Words(canonical, tuple(train.split("|")), tuple(test.split("|")))


# category nouns (what the shopper wants), then modifiers by group
NOUNS: Mapping[str, Words] = {
    "category.t-shirt-top": _w("t-shirt", "tee|top|tee shirt", "tank top|camisole"),
    "category.shirt": _w("shirt", "button-up|blouse", "button-down|oxford"),
    "category.pullover": _w("pullover", "sweater|jumper", "knitwear|sweatshirt"),
    "category.dress": _w("dress", "frock|sundress", "gown|shift"),
    "category.trouser": _w("trousers", "pants|slacks", "chinos|leggings"),
    "category.skirt": _w("skirt", "miniskirt|a-line skirt", "kilt|sarong"),
    "category.coat": _w("coat", "jacket|overcoat", "parka|trench"),
    "category.sandal": _w("sandals", "flip-flops|slides", "espadrilles|mules"),
    "category.sneaker": _w("sneakers", "trainers|running shoes", "kicks|plimsolls"),
    "category.ankle-boot": _w("ankle boots", "booties|chelsea boots", "boots|short boots"),
    "category.bag": _w("bag", "handbag|purse", "tote|satchel"),
}
MODIFIERS: Mapping[str, Words] = {
    "colour.black": _w("black", "jet black|ebony", "onyx|charcoal black"),
    "colour.white": _w("white", "ivory|snow white", "off-white|cream white"),
    "colour.grey": _w("grey", "gray|silver", "slate|ash"),
    "colour.red": _w("red", "crimson|cherry", "scarlet|ruby"),
    "colour.orange": _w("orange", "tangerine|rust", "apricot|amber"),
    "colour.yellow": _w("yellow", "lemon|mustard", "golden|canary"),
    "colour.green": _w("green", "olive|emerald", "khaki green|forest green"),
    "colour.blue": _w("blue", "azure|cobalt", "sky blue|royal blue"),
    "colour.navy": _w("navy", "navy blue|dark blue", "midnight blue|indigo"),
    "colour.purple": _w("purple", "violet|lilac", "lavender|plum"),
    "colour.pink": _w("pink", "rose|blush", "fuchsia|magenta"),
    "colour.brown": _w("brown", "chocolate|tan", "camel|chestnut"),
    "colour.beige": _w("beige", "nude|sand", "taupe|oatmeal"),
    "pattern.solid": _w("solid", "plain|one colour", "single colour|unpatterned"),
    "pattern.striped": _w("striped", "stripy|with stripes", "pinstripe|banded"),
    "pattern.checked": _w("checked", "plaid|checkered", "gingham|tartan"),
    "pattern.dotted": _w("dotted", "polka dot|spotty", "spotted|dots"),
    "pattern.colour-block": _w("colour block", "two-tone|color block", "contrast panel|bicolour"),
    "sleeve.sleeveless": _w("sleeveless", "no sleeves|tank", "armless|without sleeves"),
    "sleeve.short": _w("short sleeves", "short-sleeved|short sleeve", "half sleeves|elbow sleeves"),
    "sleeve.long": _w("long sleeves", "long-sleeved|long sleeve", "full sleeves|wrist sleeves"),
    "neckline.crew": _w("crew neck", "round neck|crewneck", "jewel neck|high round neck"),
    "neckline.v-neck": _w("v-neck", "v neck|vneck", "plunging neck|deep v"),
    "neckline.square": _w("square neck", "square neckline|straight neck", "boxy neckline"),
    "neckline.turtleneck": _w("turtleneck", "roll neck|polo neck", "funnel neck|mock neck"),
    "length.mini": _w("mini", "short|above the knee", "micro|thigh length"),
    "length.knee": _w("knee length", "knee-length|to the knee", "midi length|mid length"),
    "length.maxi": _w("maxi", "long|floor length", "ankle length|full length gown"),
    "length.shorts": _w("shorts", "short pants|bermudas", "hot pants|cut-offs"),
    "length.full-length": _w("full length", "long leg|full-length", "ankle grazing|long pants"),
}
WORDING: Mapping[str, Words] = {**NOUNS, **MODIFIERS}

# Template families: {noun} is the category; {mods} the modifiers, joined by the family.
TEMPLATES: Mapping[Split, tuple[str, ...]] = {
    "train": ("{mods} {noun}", "{noun} {mods}", "{noun} in {mods}", "{mods} {noun} please"),
    "test": (
        "looking for a {noun} that is {mods}",
        "i want {mods} {noun}s",
        "any {noun} with {mods}?",
        "{noun}, {mods}, for women",
    ),
}
JOINERS: Mapping[Split, tuple[str, ...]] = {"train": (" ", " and "), "test": (", ", " & ")}


def misspell(word: str, rng: np.random.Generator) -> str:
    """One typo: a letter dropped, doubled or swapped with the next (words of 4+ letters)."""
    if len(word) < 4 or not word.isalpha():
        return word
    i = int(rng.integers(1, len(word) - 1))
    kind = int(rng.integers(3))
    if kind == 0:
        return word[:i] + word[i + 1 :]
    if kind == 1:
        return word[:i] + word[i] + word[i:]
    return word[:i] + word[i + 1] + word[i] + word[i + 2 :]


def express(
    intent: Sequence[str], split: Split, rng: np.random.Generator, typo_rate: float = 0.08
) -> str:
    """An intent (a category key first, then modifier keys) as a SIMULATED shopper types it."""
    noun = WORDING[intent[0]].pick(split, rng)
    mods = [WORDING[k].pick(split, rng) for k in intent[1:]]
    order = rng.permutation(len(mods))
    joiner = JOINERS[split][rng.integers(len(JOINERS[split]))]
    joined = joiner.join(mods[i] for i in order)
    templates = TEMPLATES[split] if mods else ("{noun}",)
    text = templates[rng.integers(len(templates))].format(noun=noun, mods=joined).strip()
    words = [misspell(w, rng) if rng.random() < typo_rate else w for w in text.split(" ")]
    return " ".join(words)
