"""Images cannot buy memory: sizes and shapes refused from the header, the full-size decode
estimated and capped before a pixel is decoded, only a small copy kept, and a worker batch
bounded by decoded bytes. Peaks are measured as the RSS growth of a fresh process."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from processors.detector import RegionFinder
from processors.embedding import OnnxEmbedder
from processors.errors import ImageError
from processors.images import ImageLimits, decode_cost, decode_image
from processors.products import ProductProcessor, RawEvent
from processors.tagger import OnnxTagger
from schemas.dead_letter import ErrorKind
from schemas.events import encode_event
from tests.events import upsert
from tests.synthetic import flat_png

MIB = 1 << 20
PROBE = """
import resource, sys
from processors.errors import ImageError
from processors.images import ImageLimits, decode_image
data = open(sys.argv[1], "rb").read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    shape = decode_image(data, ImageLimits()).shape
except ImageError as exc:
    shape = exc.kind.value
print(shape, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""


def peak_mib(path: Path) -> tuple[str, int]:
    """(decoded shape or refusal, MiB of RSS the decode added) in a fresh process."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, check=True
    ).stdout.rsplit(" ", 1)
    return out[0], int(out[1])


@pytest.mark.parametrize(
    ("size", "mode", "why"),
    [
        ((40_000, 1_000), "RGB", "side"),  # 118 KB; passed the 40 Mpx limit, 4.5 GiB to crop
        ((100_000, 1), "L", "side"),  # 24.9 GiB asked for by the old square crop
        ((2_400, 100), "RGB", "aspect"),
        ((6_324, 6_324), "RGBA", "MiB"),  # 169 KB, within every other limit: ~890 MB before
    ],
)
def test_hostile_shapes_are_refused_from_the_header(
    size: tuple[int, int], mode: str, why: str
) -> None:
    with pytest.raises(ImageError, match=why) as refused:
        decode_image(flat_png(*size, mode), ImageLimits())
    assert refused.value.kind is ErrorKind.IMAGE_TOO_LARGE


def test_what_is_decoded_is_shrunk_and_its_peak_is_bounded(tmp_path: Path) -> None:
    limits = ImageLimits()
    cases = {"rgb": (5000, 5000, "RGB"), "rgba": (4000, 4000, "RGBA"), "bomb": (6324, 6324, "RGBA")}
    for name, (w, h, mode) in cases.items():
        (tmp_path / f"{name}.png").write_bytes(flat_png(w, h, mode))
    for name in ("rgb", "rgba"):
        w, h, mode = cases[name]
        assert decode_cost(mode, (w, h)) <= limits.max_decode_bytes
        shape, grew = peak_mib(tmp_path / f"{name}.png")
        assert shape == "(1024, 1024, 3)"  # never a full-resolution array
        assert grew <= 1.5 * limits.max_decode_bytes / MIB, (name, grew)  # documented bound
    shape, grew = peak_mib(tmp_path / "bomb.png")
    assert shape == "image_too_large" and grew < 16


class CountingEmbedder:
    """The real embedder, counting its calls (one per chunk of decoded images)."""

    def __init__(self, inner: OnnxEmbedder) -> None:
        self.inner = inner
        self.calls = 0

    @property
    def dim(self) -> int:
        return self.inner.dim

    @property
    def model_version(self) -> str:
        return self.inner.model_version

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        self.calls += 1
        return self.inner.embed(images)


def test_a_batch_is_bounded_by_decoded_bytes(
    embedder: OnnxEmbedder, finder: RegionFinder, tagger: OnnxTagger
) -> None:
    raws = [RawEvent(encode_event(upsert(f"b{i}", 1, i))) for i in range(6)]
    results = {}
    for budget in (64 * MIB, 1):  # everything at once; one image at a time
        counting = CountingEmbedder(embedder)
        limits = ImageLimits(batch_bytes=budget)
        result = ProductProcessor(counting, limits, finder, tagger).process(raws)
        results[budget] = result
        assert counting.calls == (1 if budget > 1 else 6)
    whole, chunked = (results[64 * MIB].upserts, results[1].upserts)
    assert [u.product_id for u in whole] == [u.product_id for u in chunked]
    for a, b in zip(whole, chunked, strict=True):
        assert np.allclose(a.embedding, b.embedding, atol=1e-5) and a.tags == b.tags
