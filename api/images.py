"""Query images from API callers: size-limited, and URLs only to public hosts (no SSRF into
the cluster) unless hosts are listed in STYLESTREAM_API_IMAGE_HOSTS. The checks are the
worker's own (processors/images.py), under the API's limits (config/assembly.api_image_limits)."""

from __future__ import annotations

import logging

import numpy as np
from pydantic import ValidationError

from api.errors import ApiError, image_error
from processors.errors import ProcessingError, UrlInvalid
from processors.images import ImageLimits, decode_base64_image, decode_image, read_image_bytes
from schemas.dead_letter import ErrorKind
from schemas.events import ImageRef
from schemas.validation import describe

log = logging.getLogger(__name__)
# One answer for every host that may not be used or could not be reached: which internal names
# resolve and which ports answer is not for an anonymous caller (the detail is logged).
UNAVAILABLE = "the image URL could not be fetched: it must be a public http(s) address"


def fetch_url(url: str, limits: ImageLimits) -> bytes:
    """The image's bytes (fetched apart from decoding, so a slow server holds no decode turn)."""
    try:
        ref = ImageRef(url=url)
    except ValidationError as exc:  # e.g. control characters
        raise ApiError(422, "invalid_image_url", describe(exc.errors(), root="image_url")) from exc
    try:
        return read_image_bytes(ref, limits)
    except UrlInvalid as exc:
        raise ApiError(422, "invalid_image_url", str(exc)) from exc
    except ProcessingError as exc:
        if exc.kind is ErrorKind.IMAGE_UNAVAILABLE:
            log.info("image_url refused: %s", exc)
            raise ApiError(422, "image_unavailable", UNAVAILABLE) from exc
        raise image_error(exc) from exc


def from_base64(data: str, limits: ImageLimits) -> np.ndarray:
    try:
        raw = decode_base64_image(data, limits)
    except ProcessingError as exc:
        raise image_error(exc) from exc
    return from_bytes(raw, limits)


def from_bytes(raw: bytes, limits: ImageLimits) -> np.ndarray:
    if not raw:
        raise ApiError(422, "undecodable_image", "the image is empty")
    try:
        return decode_image(raw, limits)
    except ProcessingError as exc:
        raise image_error(exc) from exc
