"""Synthetic test images (not real products): a coloured rectangle 'garment' on a plain backdrop."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def synthetic_garment(
    size: tuple[int, int] = (120, 160),
    box: tuple[int, int, int, int] = (30, 40, 90, 130),
    colour: tuple[int, int, int] = (200, 30, 40),
    background: tuple[int, int, int] = (240, 240, 240),
    seed: int = 0,
) -> np.ndarray:
    """(H, W, 3) uint8: ``box`` = x0, y0, x1, y1 (exclusive) filled with ``colour`` plus noise."""
    w, h = size
    rng = np.random.default_rng(seed)
    img = np.empty((h, w, 3), dtype=np.int16)
    img[:] = background
    x0, y0, x1, y1 = box
    img[y0:y1, x0:x1] = colour
    img += rng.integers(-4, 5, size=img.shape, dtype=np.int16)
    return np.clip(img, 0, 255).astype(np.uint8)


def encode(rgb: np.ndarray, fmt: str = "PNG", **kwargs: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def flat_png(width: int, height: int, mode: str = "RGB") -> bytes:
    """A valid PNG of one flat colour at any size, written row by row (a 40000 x 40000 image
    costs a few kilobytes of memory to make, and a few hundred to compress): the shape of a
    decompression attack that passes byte limits."""
    channels = {"L": (0, 1), "RGB": (2, 3), "RGBA": (6, 4)}[mode]

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, channels[0], 0, 0, 0)
    packer = zlib.compressobj(9)
    row = b"\x00" + b"\x7f" * (width * channels[1])
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )
