"""Searching one target (a collection and its model): query vectors projected with the
collection's head, scores put back on the base model's scale, so the rank weights mean the same
whichever model serves. Every search of a collection goes through here: the service and the
worker's neighbour vote alike."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from stores.base import Hit, Target
from stores.filters import Effort, Filters


def search_target(
    target: Target,
    base: np.ndarray,
    k: int,
    filters: Filters | None = None,
    fields: Sequence[str] | None = None,
    projected: bool = False,
    effort: Effort | None = None,
) -> list[list[Hit]]:
    """Search with base embeddings (or vectors already in this collection's space:
    ``projected``); scores come back calibrated to the base model's scale."""
    vectors = base if projected else target.vectors(base)
    hits = target.index.search(vectors, k, filters, fields=fields, effort=effort)
    head = target.head
    if head is None:
        return hits
    return [[h.rescored(head.score(h.score)) for h in row] for row in hits]
