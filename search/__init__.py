"""The read path: the two-stage search service, the neutral filters it takes and the worker's
neighbour vote, shared by the API, the CLI and the benches."""

from search.neighbours import IndexNeighbours
from search.service import (
    ImageQuery,
    IncompatibleQueryModel,
    QueryEncoder,
    Result,
    SearchService,
    StageOne,
    UnknownProduct,
)
from stores.filters import Effort, Filters

__all__ = [
    "Effort",
    "Filters",
    "ImageQuery",
    "IncompatibleQueryModel",
    "IndexNeighbours",
    "QueryEncoder",
    "Result",
    "SearchService",
    "StageOne",
    "UnknownProduct",
]
