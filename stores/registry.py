"""Postgres side of the model loop, in one module: the serving pointer over Milvus collections
and the embedding model registry (schemas/tables.py explains both tables). Product reads are
the repository's (stores/postgres.py)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Table, func, select, update
from sqlalchemy.dialects.postgresql import insert

from processors.binary_codes import BinaryCoder
from schemas.tables import (
    binary_coders,
    embedding_models,
    index_collections,
    query_models,
    text_models,
)


@dataclass(frozen=True)
class CollectionRow:
    collection: str
    model_version: str
    dim: int
    state: str
    rows: int | None = None
    switched_at: datetime | None = None
    coder_version: str | None = None  # its Hamming index's coder (None: float only)


@dataclass(frozen=True)
class RegisteredModel:
    model_version: str
    base_model_version: str
    dim: int
    artifact: bytes
    artifact_sha256: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    lineage: dict[str, Any]
    created_at: datetime | None = None
    # served visual score = shift + scale * cosine (training/embedding_head.fit_calibration)
    score_calibration: dict[str, float] | None = None


@dataclass(frozen=True)
class QueryModel:
    """A compact image encoder registered with the gallery model it is compatible with."""

    model_version: str
    gallery_model_version: str
    image_size: int
    dim: int
    artifact: bytes
    artifact_sha256: str
    card: dict[str, Any]  # ModelCard fields: input size, normalisation
    metrics: dict[str, Any]
    lineage: dict[str, Any]
    created_at: datetime | None = None


@dataclass(frozen=True)
class TextModel:
    """A query tower and a product tower trained together (training/text_run.py)."""

    model_version: str
    kind: str
    base_model_version: str
    dim: int
    query_artifact: bytes
    product_artifact: bytes
    artifact_sha256: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    lineage: dict[str, Any]
    created_at: datetime | None = None

    @staticmethod
    def digest(query: bytes, product: bytes) -> str:
        return hashlib.sha256(query + product).hexdigest()


class ServingRegistry:
    """``pointer``: the table of collections and their serving pointer (index_collections for
    image vectors, text_collections for product text vectors); the model tables are shared."""

    def __init__(self, engine: Engine, pointer: Table = index_collections) -> None:
        self.engine = engine
        self.pointer = pointer

    # -- collections and the serving pointer --------------------------------------------

    def collections(self, states: Sequence[str] = ()) -> list[CollectionRow]:
        t = self.pointer
        query = select(
            t.c.collection,
            t.c.model_version,
            t.c.dim,
            t.c.state,
            t.c.rows,
            t.c.switched_at,
            t.c.coder_version,
        ).order_by(t.c.created_at)
        if states:
            query = query.where(t.c.state.in_(list(states)))
        with self.engine.connect() as conn:
            return [CollectionRow(**r._mapping) for r in conn.execute(query)]

    def bootstrap(self, collection: str, model_version: str, dim: int) -> None:
        """Make ``collection`` the serving one if nothing serves yet (first start)."""
        stmt = insert(self.pointer).values(
            collection=collection, model_version=model_version, dim=dim, state="serving"
        )
        with self.engine.begin() as conn:
            conn.execute(stmt.on_conflict_do_nothing())

    def start_build(
        self, collection: str, model_version: str, dim: int, coder_version: str | None = None
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(self.pointer).values(
                    collection=collection,
                    model_version=model_version,
                    dim=dim,
                    state="building",
                    coder_version=coder_version,
                )
            )

    def switch(self, collection: str, rows: int) -> str | None:
        """Serve ``collection`` in one transaction; the old serving one is retired (kept).
        Returns the retired collection's name."""
        t = self.pointer
        with self.engine.begin() as conn:
            old = conn.execute(
                select(t.c.collection).where(t.c.state == "serving").with_for_update()
            ).scalar_one_or_none()
            conn.execute(update(t).where(t.c.state == "serving").values(state="retired"))
            done = conn.execute(
                update(t)
                .where(t.c.collection == collection, t.c.state == "building")
                .values(state="serving", rows=rows, switched_at=func.now())
            )
            if done.rowcount != 1:
                raise LookupError(f"collection {collection!r} is not being built")
        return old

    def stop_serving(self) -> str | None:
        """Retire the serving collection, leaving none: for text collections only, whose
        queries then fall back to words alone (images always need one). Returns its name."""
        if self.pointer is index_collections:
            raise ValueError("image searches always need a serving collection: reindex instead")
        t = self.pointer
        with self.engine.begin() as conn:
            return conn.execute(
                update(t)
                .where(t.c.state == "serving")
                .values(state="retired")
                .returning(t.c.collection)
            ).scalar_one_or_none()

    def forget(self, collection: str) -> None:
        """Remove a building or retired collection's row (after dropping it or a failed build);
        the serving one cannot be forgotten."""
        t = self.pointer
        with self.engine.begin() as conn:
            state = conn.execute(
                select(t.c.state).where(t.c.collection == collection)
            ).scalar_one_or_none()
            if state is None:
                raise LookupError(f"{collection!r} is not a collection of {t.name}")
            if state == "serving":
                raise ValueError(f"{collection!r} is serving: switch to another one first")
            conn.execute(t.delete().where(t.c.collection == collection))

    # -- the model registry ----------------------------------------------------------------

    def register(self, model: RegisteredModel) -> None:
        values = {k: v for k, v in model.__dict__.items() if k != "created_at"}
        with self.engine.begin() as conn:
            conn.execute(insert(embedding_models).values(**values))

    def model(self, model_version: str) -> RegisteredModel | None:
        values = self._artifact_row(embedding_models, model_version)
        return None if values is None else RegisteredModel(**values)

    def _artifact_row(self, table: Table, model_version: str) -> dict[str, Any] | None:
        """One model's row by version, its artifact as bytes (drivers hand back a view)."""
        query = select(table).where(table.c.model_version == model_version)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        values = dict(row._mapping)
        values["artifact"] = bytes(values["artifact"])
        return values

    def register_coder(
        self, coder: BinaryCoder, model_version: str, params: dict[str, Any]
    ) -> None:
        """Keeps ``coder`` (once: its version is a hash of its arrays)."""
        artifact = coder.to_bytes()
        stmt = insert(binary_coders).values(
            coder_version=coder.version,
            model_version=model_version,
            kind=coder.kind,
            bits=coder.bits,
            artifact=artifact,
            artifact_sha256=hashlib.sha256(artifact).hexdigest(),
            params=params,
        )
        with self.engine.begin() as conn:
            conn.execute(stmt.on_conflict_do_nothing(index_elements=["coder_version"]))

    def coder(self, coder_version: str) -> BinaryCoder:
        query = select(binary_coders.c.artifact).where(
            binary_coders.c.coder_version == coder_version
        )
        with self.engine.connect() as conn:
            artifact = conn.execute(query).scalar_one_or_none()
        if artifact is None:
            raise LookupError(f"unknown binary coder {coder_version!r}")
        return BinaryCoder.from_bytes(bytes(artifact))

    def models(self) -> list[dict[str, Any]]:
        t = embedding_models
        query = select(
            t.c.model_version,
            t.c.base_model_version,
            t.c.dim,
            t.c.artifact_sha256,
            t.c.metrics,
            t.c.lineage,
            t.c.score_calibration,
            t.c.created_at,
        ).order_by(t.c.created_at)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    # -- compact query models ----------------------------------------------------------------

    def register_query_model(self, model: QueryModel) -> None:
        """Keeps ``model`` (a version is registered once; the same bytes again are a no-op)."""
        values = {k: v for k, v in model.__dict__.items() if k != "created_at"}
        stmt = insert(query_models).values(**values)
        with self.engine.begin() as conn:
            conn.execute(stmt.on_conflict_do_nothing(index_elements=["model_version"]))
            stored = conn.execute(
                select(query_models.c.artifact_sha256).where(
                    query_models.c.model_version == model.model_version
                )
            ).scalar_one()
        if stored != model.artifact_sha256:
            raise ValueError(f"query model {model.model_version!r} is registered with other bytes")

    def query_model(self, model_version: str) -> QueryModel | None:
        values = self._artifact_row(query_models, model_version)
        return None if values is None else QueryModel(**values)

    # -- text models ------------------------------------------------------------------------

    def register_text_model(self, model: TextModel) -> None:
        """Keeps ``model`` (its version names its bytes: the same again is a no-op)."""
        if TextModel.digest(model.query_artifact, model.product_artifact) != model.artifact_sha256:
            raise ValueError("text model artifact_sha256 does not match its graphs")
        values = {k: v for k, v in model.__dict__.items() if k != "created_at"}
        stmt = insert(text_models).values(**values)
        with self.engine.begin() as conn:
            conn.execute(stmt.on_conflict_do_nothing(index_elements=["model_version"]))
            stored = conn.execute(
                select(text_models.c.artifact_sha256).where(
                    text_models.c.model_version == model.model_version
                )
            ).scalar_one()
        if stored != model.artifact_sha256:
            raise ValueError(f"text model {model.model_version!r} is registered with other bytes")

    def text_model(self, model_version: str) -> TextModel | None:
        query = select(text_models).where(text_models.c.model_version == model_version)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        values = dict(row._mapping)
        for key in ("query_artifact", "product_artifact"):
            values[key] = bytes(values[key])
        return TextModel(**values)

    def text_models(self) -> list[dict[str, Any]]:
        """Every text model without its graphs, oldest first."""
        t = text_models
        heavy = ("query_artifact", "product_artifact")
        query = select(*(c for c in t.c if c.name not in heavy)).order_by(t.c.created_at)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]
