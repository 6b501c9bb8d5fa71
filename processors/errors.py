"""Processing failures as data: each carries the dead-letter error kind it maps to."""

from __future__ import annotations

from schemas.dead_letter import ErrorKind


class ProcessingError(Exception):
    """A failure that belongs to one event, not to the worker."""

    kind: ErrorKind = ErrorKind.PROCESSING_ERROR

    def __init__(self, message: str, kind: ErrorKind | None = None) -> None:
        super().__init__(message)
        if kind is not None:
            self.kind = kind


class ImageError(ProcessingError):
    kind = ErrorKind.UNDECODABLE_IMAGE


class UrlRefused(ImageError):
    """An image URL that may not be fetched: its host is not allowed or not a public address.
    Callers outside the trust boundary get no more than "unavailable" (which names resolve,
    and to what, is for logs and dead letters)."""

    kind = ErrorKind.IMAGE_UNAVAILABLE


class UrlInvalid(UrlRefused):
    """Not an http(s) URL with a host: the caller's own text is wrong (safe to say how)."""
