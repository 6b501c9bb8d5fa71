"""Query images from API callers: size-limited, and URLs only to public hosts (no SSRF into
the cluster) unless hosts are listed in STYLESTREAM_API_IMAGE_HOSTS. The checks are the
worker's own (processors/images.py), under the API's limits (config/assembly.api_image_limits)."""

from __future__ import annotations

import numpy as np

from api.errors import ApiError, image_error
from processors.errors import ProcessingError
from processors.images import (
    ImageLimits,
    UrlRefused,
    decode_base64_image,
    decode_image,
    load_image,
)
from schemas.events import ImageRef


def from_url(url: str, limits: ImageLimits) -> np.ndarray:
    try:
        return load_image(ImageRef(url=url), limits)
    except UrlRefused as exc:
        raise ApiError(422, "invalid_image_url", str(exc)) from exc
    except ProcessingError as exc:
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
