"""The joint modifier models' registry (schemas/tables.modify_models): kept with lineage, one
serving at a time. Registering a model makes it serve (the one before retires, not deleted:
``serve`` brings it back)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, inspect, select, text, update
from sqlalchemy.dialects.postgresql import insert

from schemas.tables import modify_models

SERVING = "serving"
RETIRED = "retired"


@dataclass(frozen=True)
class ModifyModel:
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


class ModifyModels:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def check(self) -> None:
        """Before an expensive training run: the table it will be registered in exists."""
        if not inspect(self.engine).has_table(modify_models.name):
            raise LookupError("Postgres has no modify_models table: run `stylestream migrate`")

    def register(self, model: ModifyModel) -> None:
        """Keeps ``model`` and makes it serve (its version names its bytes: the same again
        only switches to it)."""
        if ModifyModel.digest(model.artifact) != model.artifact_sha256:
            raise ValueError("modify model artifact_sha256 does not match its graph")
        values = {k: v for k, v in model.__dict__.items() if k != "created_at"}
        values["state"] = RETIRED
        t = modify_models
        with self.engine.begin() as conn:
            conn.execute(insert(t).values(**values).on_conflict_do_nothing())
            stored = conn.execute(
                select(t.c.artifact_sha256).where(t.c.model_version == model.model_version)
            ).scalar_one()
        if stored != model.artifact_sha256:
            raise ValueError(f"modify model {model.model_version!r} is registered with other bytes")
        self.serve(model.model_version)

    def serve(self, model_version: str) -> None:
        t = modify_models
        with self.engine.begin() as conn:
            # switches one at a time: two at once would both retire the old model, then both
            # set theirs serving (the one-serving index would refuse the second)
            conn.execute(text(f"LOCK TABLE {t.name} IN SHARE ROW EXCLUSIVE MODE"))
            chosen = select(t.c.model_version).where(t.c.model_version == model_version)
            known = conn.execute(chosen).first()
            if known is None:
                raise LookupError(f"no modify model {model_version!r}")
            conn.execute(update(t).where(t.c.state == SERVING).values(state=RETIRED))
            conn.execute(update(t).where(t.c.model_version == model_version).values(state=SERVING))

    def serving_version(self) -> str | None:
        query = select(modify_models.c.model_version).where(modify_models.c.state == SERVING)
        with self.engine.connect() as conn:
            value: str | None = conn.execute(query).scalar_one_or_none()
        return value

    def get(self, model_version: str) -> ModifyModel | None:
        query = select(modify_models).where(modify_models.c.model_version == model_version)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        values = dict(row._mapping)
        values["artifact"] = bytes(values["artifact"])
        return ModifyModel(**values)

    def list(self) -> list[dict[str, Any]]:
        """Every modify model without its graph, oldest first."""
        t = modify_models
        query = select(*(c for c in t.c if c.name != "artifact")).order_by(t.c.created_at)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]
