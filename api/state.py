"""What the API holds open for its lifetime, and the dependency that hands it to routes."""

from __future__ import annotations

import hmac
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Header, Request

from api.errors import ApiError
from api.events import ImpressionEmitter, KafkaSender
from api.sessions import Sessions
from config.settings import Settings
from processors.images import ImageLimits
from search import SearchService
from search.batching import QueryBatcher
from search.modify import ModifySearch
from search.outfits import CompleteTheLook
from search.text import TextSearch
from stores.milvus import MilvusProbe
from stores.outfits import OutfitRepository
from stores.postgres import PostgresRepository
from stores.summaries import SummaryCache


@dataclass
class ApiState:
    settings: Settings
    search: SearchService
    milvus: MilvusProbe
    repo: PostgresRepository
    limits: ImageLimits
    sender: KafkaSender
    impressions: ImpressionEmitter
    sessions: Sessions
    batcher: QueryBatcher
    summaries: SummaryCache
    text: TextSearch
    modify: ModifySearch
    outfits: OutfitRepository
    looks: CompleteTheLook
    api_keys: tuple[bytes, ...] = ()
    decodes: threading.BoundedSemaphore = field(
        default_factory=lambda: threading.BoundedSemaphore(4)
    )
    modifiers: threading.BoundedSemaphore = field(
        default_factory=lambda: threading.BoundedSemaphore(2)
    )
    looks_running: threading.BoundedSemaphore = field(
        default_factory=lambda: threading.BoundedSemaphore(4)
    )

    @contextmanager
    def modifying(self) -> Iterator[None]:
        """A turn to run a modifier search: bounded like decodes, 503 when none comes."""
        if not self.modifiers.acquire(timeout=self.settings.api_decode_wait_s):
            raise ApiError(503, "busy", "too many modifier searches at once: retry shortly")
        try:
            yield
        finally:
            self.modifiers.release()

    @contextmanager
    def looking(self) -> Iterator[None]:
        """A turn to complete a look (a Milvus search and a model run per role): bounded,
        503 when none comes."""
        if not self.looks_running.acquire(timeout=self.settings.api_decode_wait_s):
            raise ApiError(503, "busy", "too many looks are being completed: retry shortly")
        try:
            yield
        finally:
            self.looks_running.release()

    @contextmanager
    def decoding(self) -> Iterator[None]:
        """A turn to decode a query image: at most a few at once, so the API's memory is
        bounded whatever the number of concurrent uploads; 503 when none comes in time."""
        if not self.decodes.acquire(timeout=self.settings.api_decode_wait_s):
            raise ApiError(503, "busy", "too many images are being decoded: retry shortly")
        try:
            yield
        finally:
            self.decodes.release()

    def close(self) -> None:
        self.batcher.close()
        self.impressions.close()
        self.sender.close()
        self.search.targets.close()
        self.text.close()
        self.milvus.close()
        self.repo.close()


def get_state(request: Request) -> ApiState:
    state: ApiState = request.state.api
    return state


State = Annotated[ApiState, Depends(get_state)]


def require_key(search: bool) -> Any:
    """When API keys are configured: interactions (``search`` False) always need one in
    X-Api-Key, searches only with ``api_keys_for_search``."""

    def check(
        state: State,
        x_api_key: Annotated[str | None, Header(alias="X-Api-Key", max_length=256)] = None,
    ) -> None:
        if not state.api_keys or (search and not state.settings.api_keys_for_search):
            return
        given = (x_api_key or "").encode()
        if not any(hmac.compare_digest(given, key) for key in state.api_keys):
            raise ApiError(401, "unauthorized", "a valid X-Api-Key header is needed")

    return Depends(check)
