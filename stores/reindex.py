"""`stylestream reindex --model VERSION`: a new Milvus collection for an embedding model, built
from the products in Postgres, then switched in without downtime.

1. Create the collection and register it as ``building``: from the next pointer refresh on,
   every worker writes new product events to it too (stores/writer.py), so none are lost.
   With a binary index, its coder is fitted first (on a sample of the new vectors) and
   registered with the collection, so every write, the workers' too, carries its code.
2. Wait out that refresh, then vectorise every stored product with the model: an image head's
   projection of its base embedding, or a text model's product tower (stores/text_serving.py).
3. Catch up: products written since the pass began are re-read and rewritten (a worker's newer
   version may have landed before this pass overwrote it with an older read), until a pass
   finds nothing new.
4. Switch the serving pointer in one Postgres transaction and move the Milvus alias. Searches
   read the pointer and pick the (collection, head) pair together; the old collection is kept
   (retired) until `stylestream index drop`, so a search that read the old pointer still works.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import numpy as np

from processors.binary_codes import BinaryCoder
from stores.base import IndexRow, MetadataRepository, Projection, VectorIndex
from stores.registry import ServingRegistry
from stores.rows import decode_base, embedded_in, stored_index_row
from stores.serving import OpenIndex, load_head

log = logging.getLogger(__name__)
FitCoder = Callable[[np.ndarray], BinaryCoder]


class Vectoriser(Protocol):
    """A model's vectors of stored products (rows of ``product_batches`` with ``attributes``):
    an image head's projection of their base embeddings, or a text model's product tower."""

    @property
    def dim(self) -> int: ...

    def vectors(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray: ...


@dataclass(frozen=True)
class HeadVectors:
    """An image model: the base embedding itself (``head`` None) or a head's projection."""

    head: Projection | None
    base_dim: int

    @property
    def dim(self) -> int:
        return self.head.dim if self.head is not None else self.base_dim

    def vectors(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        base = np.asarray([decode_base(r["base_embedding"]) for r in rows], dtype=np.float32)
        return base if self.head is None else self.head.project(base)


# A worker's write transaction takes its updated_at at its start: look this far back so one
# that began before a pass and committed during it is caught.
CATCH_UP_MARGIN = timedelta(seconds=30)
MAX_CATCH_UP_PASSES = 10


@dataclass
class ReindexReport:
    model_version: str
    collection: str
    retired: str | None
    rows: int
    products: int
    missing_base_embedding: list[str] = field(default_factory=list)
    catch_up: list[int] = field(default_factory=list)  # products rewritten per pass
    alias: str | None = None
    alias_error: str | None = None
    seconds: float = 0.0
    coder_version: str | None = None  # the binary index's coder (None: float only)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def collection_name(prefix: str, model_version: str, now: datetime) -> str:
    """Milvus names: letters, digits and underscores, starting with a letter or underscore."""
    slug = re.sub(r"[^A-Za-z0-9]+", "_", model_version).strip("_")
    return f"{prefix}__{slug}__{now:%Y%m%d%H%M%S}"[:255]


@dataclass(frozen=True)
class ReindexConfig:
    collection_prefix: str  # new collections are named <prefix>__<model>__<time>
    base_model_version: str
    base_dim: int
    refresh_s: float = 2.0  # the workers' serving pointer refresh (stores/serving.py)
    alias: str = ""  # moved to the new collection; "" leaves aliases alone
    coder_sample: int = 20_000  # products whose vectors fit a binary coder


class Reindexer:
    def __init__(
        self,
        config: ReindexConfig,
        registry: ServingRegistry,
        repo: MetadataRepository,
        open_index: OpenIndex,
        progress: Callable[[int, int], None] | None = None,
        vectoriser: Callable[[str], Vectoriser] | None = None,
    ) -> None:
        """``registry``: its pointer table says which collections this re-index switches
        (image or text); ``vectoriser``: a model version's vectoriser (default: the image
        heads of the registry)."""
        self.config = config
        self.registry = registry
        self.repo = repo
        self.open_index = open_index
        self.progress = progress or (lambda done, total: None)
        self.vectoriser = vectoriser or self._image_model

    def _image_model(self, model_version: str) -> Vectoriser:
        c = self.config
        head = load_head(self.registry, model_version, c.base_model_version)
        return HeadVectors(head, c.base_dim)

    def _rows(
        self, batch: Sequence[Mapping[str, Any]], model: Vectoriser, version: str
    ) -> tuple[list[IndexRow], list[str]]:
        present = [r for r in batch if embedded_in(r, self.config.base_model_version)]
        kept = {r["product_id"] for r in present}
        missing = [r["product_id"] for r in batch if r["product_id"] not in kept]
        if not present:
            return [], missing
        attributes = self.repo.get_attributes([r["product_id"] for r in present])
        present = [{**r, "attributes": attributes.get(r["product_id"], [])} for r in present]
        rows = [
            stored_index_row(r, r["attributes"], v, version)
            for r, v in zip(present, model.vectors(present), strict=True)
        ]
        return rows, missing

    def _catch_up(
        self,
        index: VectorIndex,
        model: Vectoriser,
        version: str,
        since: datetime,
        seen: dict[str, datetime],
    ) -> tuple[int, datetime]:
        """Rewrite the products whose ledger moved since ``since`` (less a margin) and that
        this re-index has not yet rewritten at that ledger time. Returns (rewritten, now)."""
        changed, now = self.repo.changed_since(since - CATCH_UP_MARGIN)
        fresh = {pid: v for pid, v in changed.items() if seen.get(pid) != v[0]}
        live = [pid for pid, (_, deleted) in fresh.items() if not deleted]
        rows, _ = self._rows(list(self.repo.get_products(live).values()), model, version)
        index.upsert(rows)
        index.delete([pid for pid, (_, deleted) in fresh.items() if deleted])
        seen.update({pid: at for pid, (at, _) in fresh.items()})
        return len(fresh), now

    def _sample(self, model: Vectoriser, version: str, limit: int) -> np.ndarray:
        """The served vectors of up to ``limit`` products (in id order: unrelated to what
        they show), to fit a coder on."""
        vectors: list[np.ndarray] = []
        for batch in self.repo.product_batches():
            rows, _ = self._rows(batch, model, version)
            vectors += [np.asarray(r.embedding) for r in rows]
            if len(vectors) >= limit:
                break
        if not vectors:
            raise RuntimeError("no product has a stored embedding to fit a binary coder on")
        return np.stack(vectors[:limit])

    def _coder(self, fit: FitCoder | None, model: Vectoriser, version: str) -> BinaryCoder | None:
        if fit is None:
            return None
        sample = self._sample(model, version, self.config.coder_sample)
        coder = fit(sample)
        self.registry.register_coder(coder, version, {"sample": len(sample)})
        return coder

    def run(self, model_version: str, fit_coder: FitCoder | None = None) -> ReindexReport:
        """``fit_coder``: fits the binary index's coder on a sample of the new collection's
        vectors (the CLI passes training's fitter); None builds a float-only collection."""
        started = time.monotonic()
        c = self.config
        model = self.vectoriser(model_version)
        name = collection_name(c.collection_prefix, model_version, datetime.now(UTC))
        coder = self._coder(fit_coder, model, model_version)
        index = self.open_index(name, model.dim, coder)
        self.registry.start_build(name, model_version, model.dim, coder.version if coder else None)
        report = ReindexReport(model_version, name, None, 0, self.repo.count_products())
        report.coder_version = coder.version if coder else None
        try:
            # Every worker re-reads the pointer within serving_refresh_s: from then on it
            # writes new events here too.
            time.sleep(2 * c.refresh_s + 0.5)
            since = self.repo.now()
            done = 0
            for batch in self.repo.product_batches():
                rows, missing = self._rows(batch, model, model_version)
                index.upsert(rows)
                report.missing_base_embedding += missing
                done += len(batch)
                self.progress(done, report.products)
            seen: dict[str, datetime] = {}
            for _ in range(MAX_CATCH_UP_PASSES):
                changed, since = self._catch_up(index, model, model_version, since, seen)
                report.catch_up.append(changed)
                if not changed:
                    break
            index.flush()
            report.rows = index.count()
            report.retired = self.registry.switch(name, report.rows)
        except BaseException:
            log.exception(
                "re-index into %s failed: dropping it, the serving one is unchanged", name
            )
            self.registry.forget(name)
            index.drop()
            index.close()
            raise
        self._alias(index, report)
        # Writes between the last pass and the switch went to both collections; one last pass
        # covers a pass-read row that raced a worker's newer write.
        report.catch_up.append(self._catch_up(index, model, model_version, since, seen)[0])
        index.flush()
        index.close()
        report.seconds = round(time.monotonic() - started, 2)
        return report

    def _alias(self, index: VectorIndex, report: ReindexReport) -> None:
        """Point the alias at the new collection, for Milvus clients other than ours. Our
        searches follow the Postgres pointer, so a failure here is reported, not fatal."""
        alias = self.config.alias
        if not alias:
            return
        try:
            index.set_alias(alias)
            report.alias = alias
        except Exception as exc:
            report.alias_error = f"{type(exc).__name__}: {exc}"
            log.warning("alias %s not moved: %s", alias, exc)
