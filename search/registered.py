"""A registry's serving model, held by a read path (modifier search, complete the look): looked
up at most every ``refresh_s`` (outside any request's way: the check is double-locked, a new
model is loaded while the last one keeps answering). A failed look-up or load keeps the last
model for another period, and with none loaded yet answers "unavailable" rather than an error
from the store."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

log = logging.getLogger(__name__)


class Versioned(Protocol):
    model_version: str


M = TypeVar("M", bound=Versioned)


class RegisteredModel(Generic[M]):
    """A subclass says how a model is built from its bytes and what "unavailable" reads."""

    def __init__(
        self,
        serving_version: Callable[[], str | None],
        load: Callable[[str], bytes | None],
        refresh_s: float = 10.0,
        threads: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._version = serving_version
        self._load = load
        self.threads = threads
        self.refresh_s = refresh_s
        self.clock = clock
        self._model: M | None = None
        self._checked = float("-inf")
        self._failure: str | None = None
        self._lock = threading.Lock()

    def build(self, artifact: bytes, version: str) -> M:
        raise NotImplementedError

    def unavailable(self, failure: str) -> Exception:
        raise NotImplementedError

    def current(self) -> M | None:
        if self.clock() - self._checked >= self.refresh_s:
            with self._lock:
                if self.clock() - self._checked >= self.refresh_s:
                    self._refresh()
        if self._model is None and self._failure is not None:
            raise self.unavailable(self._failure)
        return self._model

    def _refresh(self) -> None:
        """Looked up and loaded before the check time is set, so callers arriving during a
        first load wait for it on the lock rather than answer "no model"."""
        try:
            version = self._version()
            if version is None:
                self._model, self._failure = None, None
                return
            if self._model is not None and self._model.model_version == version:
                return
            artifact = self._load(version)
            if artifact is None:
                raise LookupError(f"model {version!r} vanished from the registry")
            self._model = self.build(artifact, version)
            self._failure = None
        except Exception as exc:
            log.warning("serving model refresh failed, keeping the last: %s", exc)
            # our own refusals say what to do; a store's error text stays in the log
            own = isinstance(exc, (ValueError, LookupError))
            self._failure = str(exc) if own else "the model registry could not be read"
        finally:
            self._checked = self.clock()
