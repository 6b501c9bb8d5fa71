"""The category vote's neighbours, from the index: the worker's half of model + search fusion
(processors/tagger.py)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from search.targets import search_target
from stores.base import IndexTargets


class IndexNeighbours:
    def __init__(self, targets: IndexTargets) -> None:
        self.targets = targets

    def neighbours(
        self, vectors: np.ndarray, k: int, own_ids: Sequence[str]
    ) -> list[list[tuple[str, float]]]:
        """Each vector's ``k`` nearest indexed products' (category, score), itself excluded."""
        hits = search_target(self.targets.serving(), vectors, k + 1, fields=["category"])
        return [
            [(h.row.category, h.score) for h in row if h.product_id != own][:k]
            for own, row in zip(own_ids, hits, strict=True)
        ]
