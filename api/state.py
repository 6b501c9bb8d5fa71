"""What the API holds open for its lifetime, and the dependency that hands it to routes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from api.events import ImpressionEmitter, KafkaSender
from config.settings import Settings
from processors.images import ImageLimits
from search import SearchService
from stores.milvus import MilvusProbe
from stores.postgres import PostgresRepository


@dataclass
class ApiState:
    settings: Settings
    search: SearchService
    milvus: MilvusProbe
    repo: PostgresRepository
    limits: ImageLimits
    sender: KafkaSender
    impressions: ImpressionEmitter

    def close(self) -> None:
        self.impressions.close()
        self.sender.close()
        self.search.targets.close()
        self.milvus.close()
        self.repo.close()


def get_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.api
    return state


State = Annotated[ApiState, Depends(get_state)]
