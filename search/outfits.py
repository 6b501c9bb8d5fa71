"""Complete the look (issue 17): for an indexed product, per wanted role, candidates from the
image index under that role's department (the attribute inverted index: ``department.*`` keys
the tagger stores with every product), reranked by the serving compatibility model's score
beside the product (processors/outfit_compat.py). The one read path of the API and the CLI."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from processors.modify import joined_batch
from processors.outfit_compat import ROLE_INDEX, CompatEncoder
from search.registered import RegisteredModel
from search.service import MAX_CANDIDATES, UnknownProduct
from search.targets import search_target
from stores.base import Hit, IndexRow, IndexTargets, MetadataRepository
from stores.filters import Filters
from stores.rows import decode_base

# the roles complete-the-look serves, by the department the tagger files their items under
ROLE_DEPARTMENTS = {
    "top": "department.tops",
    "bottom": "department.bottoms",
    "dress": "department.dresses",
    "outer": "department.outerwear",
    "shoes": "department.footwear",
    "bag": "department.bags",
}
DEPARTMENT_ROLES = {d: r for r, d in ROLE_DEPARTMENTS.items()}
# what an anchor of a role is worn with by default (a dress takes neither top nor bottom)
WORN_WITH = {
    "top": ("bottom", "shoes", "bag", "outer"),
    "bottom": ("top", "shoes", "bag", "outer"),
    "dress": ("shoes", "bag", "outer"),
    "outer": ("top", "bottom", "shoes", "bag"),
    "shoes": ("top", "bottom", "dress", "bag", "outer"),
    "bag": ("top", "bottom", "dress", "shoes", "outer"),
}
MAX_PER_ROLE = 20


class CompatUnavailable(RuntimeError):
    """No compatibility model serves, or it reads another base model's space than the item's."""


class UnknownRole(ValueError):
    """A role complete-the-look does not serve, or one not worn with the product's."""


class NoOutfitRole(ValueError):
    """The product's department has no outfit role (nothing to complete)."""


class RegisteredCompat(RegisteredModel[CompatEncoder]):
    """The registry's serving compatibility model (search/registered.py)."""

    def build(self, artifact: bytes, version: str) -> CompatEncoder:
        return CompatEncoder(artifact, version, self.threads)

    def unavailable(self, failure: str) -> Exception:
        return CompatUnavailable(f"the compatibility model cannot be read: {failure}")


@dataclass(frozen=True)
class FixedCompat:
    """A given model (tests, the eval)."""

    encoder: CompatEncoder | None

    def current(self) -> CompatEncoder | None:
        return self.encoder


@dataclass(frozen=True)
class LookQuery:
    product_id: str
    roles: tuple[str, ...] = ()  # none: what the product's role is worn with
    k: int = 5


@dataclass(frozen=True)
class LookHit:
    row: IndexRow
    score: float  # compatibility beside the product (higher: goes better)
    similarity: float  # the image index's score (what retrieved it)
    retrieved_rank: int  # its place among the role's candidates before the rerank

    @property
    def product_id(self) -> str:
        return self.row.product_id


@dataclass(frozen=True)
class LookResult:
    product_role: str
    by_role: dict[str, list[LookHit]]
    model_version: str


def role_of(attributes: Sequence[str]) -> str | None:
    """The role of an item from its stored attribute keys (its department)."""
    return next((DEPARTMENT_ROLES[a] for a in attributes if a in DEPARTMENT_ROLES), None)


def check_roles(roles: Sequence[str]) -> tuple[str, ...]:
    unknown = [r for r in roles if r not in ROLE_DEPARTMENTS]
    if unknown:
        raise UnknownRole(
            f"complete-the-look serves roles {', '.join(ROLE_DEPARTMENTS)}; not {unknown[0]!r}"
        )
    return tuple(dict.fromkeys(roles))


class CompleteTheLook:
    def __init__(
        self,
        targets: IndexTargets,
        repo: MetadataRepository,
        models: FixedCompat | RegisteredCompat,
        candidates: int = 100,
    ) -> None:
        self.targets = targets
        self.repo = repo
        self.models = models
        self.candidates = candidates

    def complete(self, query: LookQuery) -> LookResult:
        if not 1 <= query.k <= MAX_PER_ROLE:
            raise ValueError(f"k must be 1 to {MAX_PER_ROLE}")
        wanted = check_roles(query.roles)
        encoder = self.models.current()
        if encoder is None:
            raise CompatUnavailable(
                "no compatibility model serves: train one with `stylestream train outfits`"
            )
        base, features, role = self._anchor(query.product_id, encoder)
        if role is None:
            raise NoOutfitRole(
                f"product {query.product_id!r} has no department an outfit role fits"
            )
        worn = [r for r in wanted if r not in WORN_WITH[role]]
        if worn:
            raise UnknownRole(
                f"a {role} is not worn with a {worn[0]}: ask for {', '.join(WORN_WITH[role])}"
            )
        anchor = encoder.embed(features[None, :])[0]
        target = self.targets.serving()
        by_role = {}
        for wanted_role in wanted or WORN_WITH[role]:
            filters = Filters(attributes=(ROLE_DEPARTMENTS[wanted_role],))
            pool = min(MAX_CANDIDATES, self.candidates)
            found = search_target(target, base[None, :], pool, filters)[0]
            by_role[wanted_role] = self._ranked(
                found, anchor, role, wanted_role, encoder, query.product_id
            )[: query.k]
        return LookResult(role, by_role, f"compat:{encoder.model_version}")

    def _anchor(
        self, product_id: str, encoder: CompatEncoder
    ) -> tuple[np.ndarray, np.ndarray, str | None]:
        """The product's base embedding, joined features and role."""
        row = self.repo.get_product(product_id)
        if row is None or row.get("base_embedding") is None:
            raise UnknownProduct(f"product {product_id!r} is not indexed")
        if row["model_version"] != encoder.base_model_version:
            raise CompatUnavailable(
                f"the compatibility model reads {encoder.base_model_version}'s embeddings; "
                f"product {product_id!r} was embedded by {row['model_version']}"
            )
        attributes = self.repo.get_attributes([product_id]).get(product_id, [])
        scores = {a["attribute_key"]: float(a["confidence"]) for a in attributes}
        base = decode_base(row["base_embedding"])
        joined = joined_batch([(scores, row["colour_fractions"], base)], encoder.profile_weight)
        return base, joined[0], role_of(list(scores))

    def _ranked(
        self, found: list[Hit], anchor: np.ndarray, role: str, wanted: str,
        encoder: CompatEncoder, skip: str,
    ) -> list[LookHit]:  # fmt: skip
        stored = self.repo.base_embeddings([h.product_id for h in found])
        space = encoder.base_model_version
        kept = [
            (rank, h)
            for rank, h in enumerate(found, 1)
            if h.product_id != skip and stored.get(h.product_id, ("", b""))[0] == space
        ]
        if not kept:
            return []
        joined = joined_batch(
            [
                (h.attribute_scores, h.colour_fractions, decode_base(stored[h.product_id][1]))
                for _, h in kept
            ],
            encoder.profile_weight,
        )
        scores = encoder.head.pair_scores(anchor, ROLE_INDEX[role], encoder.embed(joined),
                                          ROLE_INDEX[wanted])  # fmt: skip
        order = np.argsort(-scores, kind="stable")
        return [
            LookHit(kept[i][1].row, float(scores[i]), float(kept[i][1].score), kept[i][0])
            for i in order
        ]
