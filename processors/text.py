"""Words of products and of text queries.

A product's searchable text is what the shopper sees or what the pipeline knows of it: its
title, brand, category, primary colour and the display names of its attributes ("Short
sleeves", "Striped"). A query is one or more weighted terms: ``"black boots"`` is one term of
weight 1; ``{"black boots": 1, "heel": -0.5}`` ranks by the first and demotes by the second; a
term of weight -1 or less excludes what it matches. Every input is bounded here, before any
store sees it, and reduced to plain ASCII words, so no query syntax of any backend can be
spelled by a user.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from schemas.attributes import BY_KEY

MAX_TERMS = 16
MAX_TERM_CHARS = 256
MAX_WORDS = 32  # per term: longer queries keep their first words
MAX_WEIGHT = 10.0
EXCLUDE_AT = -1.0  # a term weighted this low or lower removes its matches

_WORD = re.compile(r"[a-z0-9]+")


class TextQueryError(ValueError):
    """A text query that cannot be searched (no word, too many terms, a bad weight)."""


@dataclass(frozen=True)
class Term:
    text: str
    weight: float
    words: tuple[str, ...]

    @property
    def excludes(self) -> bool:
        return self.weight <= EXCLUDE_AT


def words(text: str, limit: int | None = MAX_WORDS) -> tuple[str, ...]:
    """Lower-case ASCII words (accents folded: "crêpe" -> "crepe"), at most ``limit``."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return tuple(_WORD.findall(folded))[:limit]


def parse_terms(query: str | Mapping[str, float]) -> tuple[Term, ...]:
    """A query string or a term -> weight mapping, checked: at least one positive term with a
    word in it, weights finite, non-zero and within +-``MAX_WEIGHT``, no term twice. In a
    string, each ``-word`` excludes that word and the rest is one term of weight 1 (``black
    boots -heel``), as on the page."""
    given = _from_string(query) if isinstance(query, str) else dict(query)
    if not given:
        raise TextQueryError("a text query needs at least one term")
    if len(given) > MAX_TERMS:
        raise TextQueryError(f"at most {MAX_TERMS} terms")
    terms: list[Term] = []
    for text, weight in given.items():
        if not isinstance(text, str) or len(text) > MAX_TERM_CHARS:
            raise TextQueryError(f"a term is a string of at most {MAX_TERM_CHARS} characters")
        w = float(weight)
        if not (-MAX_WEIGHT <= w <= MAX_WEIGHT) or w == 0:
            raise TextQueryError(
                f"term {text[:40]!r}: weight must be non-zero, within +-{MAX_WEIGHT}"
            )
        found = words(text)
        if any(t.text == text.strip() for t in terms):
            raise TextQueryError(f"term {text.strip()[:40]!r} is given twice")
        if found:
            terms.append(Term(text.strip(), w, found))
    if not any(t.weight > 0 for t in terms):
        raise TextQueryError("a text query needs a positive term with at least one word")
    return tuple(terms)


def _from_string(query: str) -> dict[str, float]:
    if len(query) > MAX_TERM_CHARS:
        raise TextQueryError(f"a query is at most {MAX_TERM_CHARS} characters")
    tokens = query.split()
    excluded = {t[1:]: -1.0 for t in tokens if t.startswith("-") and len(t) > 1}
    plain = " ".join(t for t in tokens if not (t.startswith("-") and len(t) > 1))
    return {plain: 1.0, **excluded} if plain else excluded


def product_text(
    title: str, brand: str | None, category: str, colour: str, attribute_keys: Iterable[str]
) -> str:
    """The words a text search matches a product on (unknown attribute keys are skipped)."""
    names = [BY_KEY[k].name for k in attribute_keys if k in BY_KEY]
    parts = [title, brand or "", category, colour, *names]
    # folded as queries are (Postgres's english configuration keeps accents: "crêpe" would
    # never meet a query's "crepe")
    return " ".join(words(" ".join(p for p in parts if p), None))[:4096]


# The in-memory twin's analysis (stores/memory.py): Postgres's ``english`` configuration drops
# these words (its english.stop, copied) and strips plural endings the same way (Snowball step
# 1a); it stems more, which the contract suite does not rely on.
STOP_WORDS = frozenset(
    (
        "i", "me", "my", "myself", "we", "our", "ours", "ourselves", "you", "your", "yours",
        "yourself", "yourselves", "he", "him", "his", "himself", "she", "her", "hers", "herself",
        "it", "its", "itself", "they", "them", "their", "theirs", "themselves", "what", "which",
        "who", "whom", "this", "that", "these", "those", "am", "is", "are", "was", "were", "be",
        "been", "being", "have", "has", "had", "having", "do", "does", "did", "doing", "a", "an",
        "the", "and", "but", "if", "or", "because", "as", "until", "while", "of", "at", "by",
        "for", "with", "about", "against", "between", "into", "through", "during", "before",
        "after", "above", "below", "to", "from", "up", "down", "in", "out", "on", "off", "over",
        "under", "again", "further", "then", "once", "here", "there", "when", "where", "why",
        "how", "all", "any", "both", "each", "few", "more", "most", "other", "some", "such", "no",
        "nor", "not", "only", "own", "same", "so", "than", "too", "very", "s", "t", "can", "will",
        "just", "don", "should", "now",
    )
)  # fmt: skip


def stem(word: str) -> str:
    """Plural endings off (Snowball step 1a): dresses -> dress, boots -> boot, ponies -> poni."""
    if word.endswith("sses"):
        return word[:-2]
    if word.endswith(("ied", "ies")):
        return word[:-2] if len(word) > 4 else word[:-1]
    if word.endswith(("us", "ss")) or not word.endswith("s"):
        return word
    if any(c in "aeiouy" for c in word[:-2]):
        return word[:-1]
    return word


def lexemes(text: str) -> tuple[str, ...]:
    return tuple(stem(w) for w in words(text, None) if w not in STOP_WORDS)
