"""Image + text modifier search ("this one, but in red"): the reference (an indexed product or
an image) and the modifier words go through the serving joint model (processors/modify.py) to a
query in the joined-features space; the image index is searched with the query's embedding part
under the filters, and its candidates are ranked on the whole joined features (their stored
base embedding, attribute confidences and colour shares). The one read path of the API and
the CLI."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from processors.modify import ModifyEncoder, check_modifier, embedding_part, joined_batch
from processors.products import ProductProcessor
from search.registered import RegisteredModel
from search.service import MAX_CANDIDATES, UnknownProduct
from search.targets import search_target
from stores.base import Hit, IndexRow, IndexTargets, MetadataRepository
from stores.filters import Filters
from stores.rows import decode_base


class ModifyUnavailable(RuntimeError):
    """No modifier model serves, or it reads another base model's space than the query's."""


class ModifierSource(Protocol):
    def current(self) -> ModifyEncoder | None: ...


class RegisteredModifier(RegisteredModel[ModifyEncoder]):
    """The registry's serving modifier model (search/registered.py)."""

    def build(self, artifact: bytes, version: str) -> ModifyEncoder:
        return ModifyEncoder(artifact, version, self.threads)

    def unavailable(self, failure: str) -> Exception:
        return ModifyUnavailable(f"the modifier model cannot be read: {failure}")


@dataclass(frozen=True)
class FixedModifier:
    """A given model (tests, the eval)."""

    encoder: ModifyEncoder | None

    def current(self) -> ModifyEncoder | None:
        return self.encoder


@dataclass(frozen=True)
class ModifyQuery:
    text: str
    product_id: str | None = None
    image: np.ndarray | None = field(default=None, compare=False)
    k: int = 10
    filters: Filters | None = None
    offset: int = 0


@dataclass(frozen=True)
class ModifyHit:
    row: IndexRow
    score: float  # the query's cosine with the candidate's joined features
    embedding: float  # the embedding parts' share of ``score``
    profile: float  # the attribute and colour profile's share

    @property
    def product_id(self) -> str:
        return self.row.product_id


@dataclass(frozen=True)
class ModifyResult:
    hits: list[ModifyHit]
    model_version: str
    base: np.ndarray | None = field(default=None, compare=False)  # an image reference's


class ModifySearch:
    def __init__(
        self,
        processor: ProductProcessor,
        targets: IndexTargets,
        repo: MetadataRepository,
        models: ModifierSource,
        candidates: int = 200,
    ) -> None:
        self.processor = processor
        self.targets = targets
        self.repo = repo
        self.models = models
        self.candidates = candidates

    def search(self, query: ModifyQuery) -> ModifyResult:
        text = check_modifier(query.text)
        encoder = self.models.current()
        if encoder is None:
            raise ModifyUnavailable(
                "no modifier model serves: train one with `stylestream train modify`"
            )
        reference, base = self._reference(query, encoder)
        q = encoder.queries([text], reference[None, :])[0]
        target = self.targets.serving()
        # one pool whatever the page, so pages never overlap (deeper than it: empty pages)
        pool = min(MAX_CANDIDATES, self.candidates + 1)
        found = search_target(
            target, embedding_part(q[None, :], encoder.base_dim), pool, query.filters
        )[0]
        hits = self._ranked(found, q, encoder, skip=query.product_id)
        page = hits[query.offset : query.offset + query.k]
        return ModifyResult(page, f"modify:{encoder.model_version}", base)

    def _reference(
        self, query: ModifyQuery, encoder: ModifyEncoder
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The reference's joined features, at the model's own profile weight (and an image's
        base embedding)."""
        space, weight = encoder.base_model_version, encoder.profile_weight
        if query.product_id is not None:
            row = self.repo.get_product(query.product_id)
            if row is None or row.get("base_embedding") is None:
                raise UnknownProduct(f"product {query.product_id!r} is not indexed")
            if row["model_version"] != space:
                raise ModifyUnavailable(
                    f"the modifier model reads {space}'s embeddings; product "
                    f"{query.product_id!r} was embedded by {row['model_version']}"
                )
            attributes = self.repo.get_attributes([query.product_id]).get(query.product_id, [])
            scores = {a["attribute_key"]: float(a["confidence"]) for a in attributes}
            base = decode_base(row["base_embedding"])
            joined = joined_batch([(scores, row["colour_fractions"], base)], weight)
            return joined[0], None
        if query.image is None:
            raise ValueError("a modifier query needs a product id or an image")
        if self.processor.embedder.model_version != space:
            raise ModifyUnavailable(
                f"the modifier model reads {space}'s embeddings; this API embeds with "
                f"{self.processor.embedder.model_version}"
            )
        vectors, colours, attributes = self.processor.describe_queries([query.image])
        joined = joined_batch([(attributes[0], colours[0], vectors[0])], weight)
        return joined[0], vectors[0]

    def _ranked(
        self, found: list[Hit], q: np.ndarray, encoder: ModifyEncoder, skip: str | None
    ) -> list[ModifyHit]:
        stored = self.repo.base_embeddings([h.product_id for h in found])
        space = encoder.base_model_version
        kept = [
            h
            for h in found
            if h.product_id != skip and stored.get(h.product_id, ("", b""))[0] == space
        ]
        if not kept:
            return []
        joined = joined_batch(
            [
                (h.attribute_scores, h.colour_fractions, decode_base(stored[h.product_id][1]))
                for h in kept
            ],
            encoder.profile_weight,
        )
        d = encoder.base_dim
        embedding = joined[:, :d] @ q[:d]
        profile = joined[:, d:] @ q[d:]
        order = np.argsort(-(embedding + profile), kind="stable")
        return [
            ModifyHit(kept[i].row, float(embedding[i] + profile[i]), float(embedding[i]),
                      float(profile[i]))
            for i in order
        ]  # fmt: skip
