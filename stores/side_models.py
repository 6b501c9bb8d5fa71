"""Registries of the models that serve beside the image model (schemas/tables: the joint
modifier models, the outfit compatibility models), one table each of one shape: kept with
lineage, one serving at a time. Registering a model makes it serve (the one before retires,
not deleted: ``serve`` brings it back)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Table, inspect, select, text, update
from sqlalchemy.dialects.postgresql import insert

from schemas.tables import compat_models, modify_models

SERVING = "serving"
RETIRED = "retired"


@dataclass(frozen=True)
class SideModel:
    model_version: str
    base_model_version: str
    dim: int
    artifact: bytes = field(repr=False)
    artifact_sha256: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    lineage: dict[str, Any]
    state: str = SERVING
    created_at: datetime | None = None

    @staticmethod
    def digest(artifact: bytes) -> str:
        return hashlib.sha256(artifact).hexdigest()


class SideModels:
    def __init__(self, engine: Engine, table: Table, noun: str) -> None:
        self.engine = engine
        self.table = table
        self.noun = noun

    def check(self) -> None:
        """Before an expensive training run: the table it will be registered in exists."""
        if not inspect(self.engine).has_table(self.table.name):
            raise LookupError(f"Postgres has no {self.table.name} table: run `stylestream migrate`")

    def register(self, model: SideModel) -> None:
        """Keeps ``model`` and makes it serve (its version names its bytes: the same again
        only switches to it)."""
        if SideModel.digest(model.artifact) != model.artifact_sha256:
            raise ValueError(f"{self.noun} model artifact_sha256 does not match its graph")
        values = {k: v for k, v in model.__dict__.items() if k != "created_at"}
        values["state"] = RETIRED
        t = self.table
        with self.engine.begin() as conn:
            conn.execute(insert(t).values(**values).on_conflict_do_nothing())
            stored = conn.execute(
                select(t.c.artifact_sha256).where(t.c.model_version == model.model_version)
            ).scalar_one()
        if stored != model.artifact_sha256:
            raise ValueError(
                f"{self.noun} model {model.model_version!r} is registered with other bytes"
            )
        self.serve(model.model_version)

    def serve(self, model_version: str) -> None:
        t = self.table
        with self.engine.begin() as conn:
            # switches one at a time: two at once would both retire the old model, then both
            # set theirs serving (the one-serving index would refuse the second)
            conn.execute(text(f"LOCK TABLE {t.name} IN SHARE ROW EXCLUSIVE MODE"))
            chosen = select(t.c.model_version).where(t.c.model_version == model_version)
            known = conn.execute(chosen).first()
            if known is None:
                raise LookupError(f"no {self.noun} model {model_version!r}")
            conn.execute(update(t).where(t.c.state == SERVING).values(state=RETIRED))
            conn.execute(update(t).where(t.c.model_version == model_version).values(state=SERVING))

    def serving_version(self) -> str | None:
        t = self.table
        query = select(t.c.model_version).where(t.c.state == SERVING)
        with self.engine.connect() as conn:
            value: str | None = conn.execute(query).scalar_one_or_none()
        return value

    def get(self, model_version: str) -> SideModel | None:
        query = select(self.table).where(self.table.c.model_version == model_version)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        values = dict(row._mapping)
        values["artifact"] = bytes(values["artifact"])
        return SideModel(**values)

    def artifact(self, model_version: str) -> bytes | None:
        """A model's graph (None: not registered), as a read path loads it."""
        model = self.get(model_version)
        return None if model is None else model.artifact

    def list(self) -> list[dict[str, Any]]:
        """Every model without its graph, oldest first."""
        t = self.table
        query = select(*(c for c in t.c if c.name != "artifact")).order_by(t.c.created_at)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]


class ModifyModels(SideModels):
    """The joint image + text modifier models (POST /v1/search/modify)."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine, modify_models, "modify")


class CompatModels(SideModels):
    """The outfit compatibility models (complete the look)."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine, compat_models, "compatibility")
