"""Text search: products found by words, under the same filters as image searches. The one read
path of text queries for the API and the CLI.

Lexical matching runs in the metadata store (Postgres full-text over each product's words,
stores/postgres_text.py); the page's rows come from the serving index, as an image search's do,
so a product not yet searchable there is not shown.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from processors.text import Term, parse_terms
from stores.base import IndexRow, IndexTargets, MetadataRepository
from stores.filters import Filters

LEXICAL_MODEL = "lexical-v1"  # what ranked a lexical-only page (impressions carry it)


@dataclass(frozen=True)
class TextQuery:
    terms: tuple[Term, ...]
    k: int = 10
    filters: Filters | None = None
    offset: int = 0

    @classmethod
    def parse(
        cls,
        query: str | Mapping[str, float],
        k: int = 10,
        filters: Filters | None = None,
        offset: int = 0,
    ) -> TextQuery:
        """Raises processors.text.TextQueryError for a query with nothing to search."""
        return cls(parse_terms(query), k, filters, offset)

    @property
    def text(self) -> str:
        """The positive terms as one string (what impressions and training pairs carry)."""
        return " ".join(t.text for t in self.terms if t.weight > 0)[:512]

    def weights(self) -> dict[str, float]:
        return {t.text: t.weight for t in self.terms}


@dataclass(frozen=True)
class TextHit:
    """A product a text query found: its index row, its score and the score's parts."""

    row: IndexRow
    score: float
    lexical: float
    terms: tuple[float, ...]  # each term's lexical match, in the query's order

    @property
    def product_id(self) -> str:
        return self.row.product_id


@dataclass(frozen=True)
class TextResult:
    hits: list[TextHit]
    model_version: str


class TextSearch:
    def __init__(self, repo: MetadataRepository, targets: IndexTargets) -> None:
        self.repo = repo
        self.targets = targets

    def search(self, query: TextQuery) -> TextResult:
        matches = self.repo.text_search(query.terms, query.k, query.filters, query.offset)
        rows = self.targets.serving().index.get([m.product_id for m in matches])
        hits = [
            TextHit(rows[m.product_id], m.score, m.score, m.terms)
            for m in matches
            if m.product_id in rows
        ]
        return TextResult(hits, LEXICAL_MODEL)
