"""Query images from API callers: size-limited, and URLs only to public hosts (no SSRF into
the cluster) unless a host is listed in STYLESTREAM_API_IMAGE_HOSTS."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import socket
import urllib.parse

import numpy as np

from api.errors import ApiError, image_error
from processors.errors import ProcessingError
from processors.images import ImageLimits, decode_image, read_image_bytes
from schemas.events import ImageRef


def _check_host(url: str, allowed: list[str]) -> None:
    try:
        host = urllib.parse.urlparse(url).hostname
    except ValueError as exc:
        raise ApiError(422, "invalid_image_url", f"image_url is malformed: {exc}") from exc
    if not host:
        raise ApiError(422, "invalid_image_url", "image_url has no host")
    if allowed:
        if host not in allowed:
            raise ApiError(422, "invalid_image_url", f"image host {host!r} is not allowed")
        return
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except UnicodeError as exc:
        raise ApiError(422, "invalid_image_url", f"image host {host!r} is not valid") from exc
    except OSError as exc:
        raise ApiError(422, "image_unavailable", f"cannot resolve {host!r}") from exc
    for address in addresses:
        ip = ipaddress.ip_address(str(address).split("%")[0])
        if not ip.is_global:
            raise ApiError(
                422, "invalid_image_url", f"image host {host!r} resolves to a non-public address"
            )


def from_url(url: str, limits: ImageLimits, allowed_hosts: list[str]) -> np.ndarray:
    _check_host(url, allowed_hosts)
    try:
        return decode_image(read_image_bytes(ImageRef(url=url), limits), limits)
    except ProcessingError as exc:
        raise image_error(exc) from exc


def from_base64(data: str, limits: ImageLimits) -> np.ndarray:
    if len(data) > (limits.max_bytes * 4) // 3 + 4:
        raise ApiError(413, "image_too_large", f"image exceeds {limits.max_bytes} bytes")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(422, "undecodable_image", f"image_base64 is not base64: {exc}") from exc
    return from_bytes(raw, limits)


def from_bytes(raw: bytes, limits: ImageLimits) -> np.ndarray:
    if not raw:
        raise ApiError(422, "undecodable_image", "the image is empty")
    try:
        return decode_image(raw, limits)
    except ProcessingError as exc:
        raise image_error(exc) from exc
