"""Text search: products found by words, under the same filters as image searches. The one read
path of text queries for the API and the CLI.

Hybrid when a text collection serves (stores/text_serving.py): the query tower's vector of the
weighted terms (a negative weight pulls away from what its words mean) searched in the product
text vectors, fused by reciprocal rank with lexical matching in the metadata store (Postgres
full-text over each product's words, stores/postgres_text.py), both under the query's filters;
a product an excluding term refuses is dropped from the dense side too. Until a text collection
serves, words alone. The page's rows come from the serving image index, as an image search's
do, so a product not yet searchable there is not shown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass

import numpy as np

from processors.text import Term, parse_terms
from stores.base import IndexRow, IndexTargets, MetadataRepository
from stores.filters import Filters
from stores.text_serving import TextTarget, TextTargets

LEXICAL_MODEL = "lexical-v1"  # what ranked a lexical-only page (impressions carry it)
RRF_K = 60  # reciprocal rank fusion's damping: the usual constant
DEPTH_MARGIN = 50  # each side ranks this many past the page, so fusion can reorder it


def rrf(rankings: Sequence[Sequence[str]], k: int = RRF_K) -> dict[str, float]:
    """Reciprocal rank fusion, best first: scores from ranks only, so neither side's score
    scale matters (a full-text rank and a cosine are not comparable)."""
    scores: dict[str, float] = {}
    for ranked in rankings:
        for rank, pid in enumerate(ranked):
            scores[pid] = scores.get(pid, 0.0) + 1.0 / (k + rank + 1)
    return dict(sorted(scores.items(), key=lambda kv: (-kv[1], kv[0])))


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
    dense: float | None = None  # cosine to the query vector (None: not among the dense side's)
    lexical_rank: int | None = None  # 1-based, on each side's list (None: not on it)
    dense_rank: int | None = None

    @property
    def product_id(self) -> str:
        return self.row.product_id


@dataclass(frozen=True)
class TextResult:
    hits: list[TextHit]
    model_version: str


class TextSearch:
    def __init__(
        self,
        repo: MetadataRepository,
        targets: IndexTargets,
        text_targets: TextTargets | None = None,
    ) -> None:
        self.repo = repo
        self.targets = targets
        self.text_targets = text_targets
        # the words' query runs in Postgres while the query tower and Milvus take the dense
        # side: a hybrid search costs the slower side, not both
        self._words = ThreadPoolExecutor(4, thread_name_prefix="text-words")

    def search(self, query: TextQuery) -> TextResult:
        depth = query.offset + query.k + DEPTH_MARGIN
        target = self.text_targets.serving() if self.text_targets is not None else None
        if target is None:
            lexical = self.repo.text_search(query.terms, depth, query.filters, 0)
            page = lexical[query.offset : query.offset + query.k]
            rows = self.targets.serving().index.get([m.product_id for m in page])
            hits = [
                TextHit(rows[m.product_id], m.score, m.score, m.terms, None, i, None)
                for i, m in enumerate(page, start=query.offset + 1)
                if m.product_id in rows
            ]
            return TextResult(hits, LEXICAL_MODEL)
        words = self._words.submit(self.repo.text_search, query.terms, depth, query.filters, 0)
        try:
            dense = self._dense(target, query, depth)
        except BaseException:
            wait([words])  # its error, if any, is the same store's: this one is raised
            raise
        lexical = words.result()
        fused = rrf([[m.product_id for m in lexical], list(dense)])
        page_ids = list(fused)[query.offset : query.offset + query.k]
        rows = self.targets.serving().index.get(page_ids)
        by_id = {m.product_id: (rank, m) for rank, m in enumerate(lexical, start=1)}
        dense_rank = {pid: rank for rank, pid in enumerate(dense, start=1)}
        none = tuple(0.0 for _ in query.terms)
        hits = []
        for pid in page_ids:
            if pid not in rows:
                continue
            rank, match = by_id.get(pid, (None, None))
            hits.append(
                TextHit(
                    rows[pid],
                    fused[pid],
                    match.score if match is not None else 0.0,
                    match.terms if match is not None else none,
                    dense.get(pid),
                    rank,
                    dense_rank.get(pid),
                )
            )
        return TextResult(hits, f"hybrid:{target.model_version}")

    def _dense(self, target: TextTarget, query: TextQuery, depth: int) -> dict[str, float]:
        """Product id -> cosine, best first, excluded products dropped."""
        vectors = target.encoder.queries([t.text for t in query.terms])
        weights = np.array([t.weight for t in query.terms], dtype=np.float32)
        vector = weights @ vectors
        norm = float(np.linalg.norm(vector))
        if norm == 0.0:
            return {}
        hits = target.index.search((vector / norm)[None], depth, query.filters)[0]
        refused = self.repo.text_excluded([h.product_id for h in hits], query.terms)
        return {h.product_id: h.score for h in hits if h.product_id not in refused}

    def close(self) -> None:
        self._words.shutdown(wait=True)
        if self.text_targets is not None:
            self.text_targets.close()
