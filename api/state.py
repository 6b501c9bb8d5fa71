"""What the API holds open for its lifetime, and the dependency that hands it to routes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

if TYPE_CHECKING:  # api.interactions depends on this module for its routes
    from api.interactions import ImpressionEmitter, KafkaSender

from processors.images import ImageLimits
from stores.postgres import PostgresRepository
from stylestream.search import SearchService
from stylestream.serving import ServingIndex
from stylestream.settings import Settings


@dataclass
class ApiState:
    settings: Settings
    search: SearchService
    index: ServingIndex
    repo: PostgresRepository
    limits: ImageLimits
    sender: KafkaSender
    impressions: ImpressionEmitter

    def close(self) -> None:
        self.impressions.close()
        self.sender.close()
        self.index.close()
        self.repo.close()


def get_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.api
    return state


State = Annotated[ApiState, Depends(get_state)]
