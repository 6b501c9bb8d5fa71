"""Property-based attacks (hypothesis) on every parser of untrusted bytes: the event decoder,
the image loader and the URL fetcher's checks. Whatever comes in, the outcome is a value or
the project's own error carrying a dead-letter kind: never another exception, never an
unbounded array."""

from __future__ import annotations

import io
import json
import string
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from processors.decoding import decode_json_event
from processors.errors import ProcessingError
from processors.fetch import FetchPolicy, vet
from processors.images import ImageLimits, decode_image, read_image_bytes
from schemas.dead_letter import ErrorKind
from schemas.events import ImageRef, parse_product_event
from schemas.interactions import parse_interaction_event
from tests.synthetic import encode, flat_png, synthetic_garment

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
SMALL = ImageLimits(max_bytes=200_000, max_pixels=4_000_000, decode_side=256)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=40,
)
GOOD = {
    "schema_version": 1,
    "type": "product.upsert",
    "product_id": "p",
    "version": 1,
    "title": "t",
    "category": "dress",
    "price": "1.00",
    "currency": "EUR",
    "image": {"url": "https://cdn.example/p.png"},
}


def decodes_or_dead_letters(value: bytes) -> None:
    for parse in (parse_product_event, parse_interaction_event):
        try:
            decode_json_event(value, parse)
        except ProcessingError as exc:
            assert isinstance(exc.kind, ErrorKind) and str(exc)


@FUZZ
@given(st.binary(max_size=2000))
def test_any_bytes_are_an_event_or_a_dead_letter(value: bytes) -> None:
    decodes_or_dead_letters(value)


@FUZZ
@given(json_values, st.integers(min_value=0, max_value=3000))
def test_any_json_at_any_depth_is_an_event_or_a_dead_letter(value: object, depth: int) -> None:
    decodes_or_dead_letters(json.dumps(value).encode())
    decodes_or_dead_letters(b"[" * depth + json.dumps(value).encode() + b"]" * depth)


@FUZZ
@given(st.sampled_from(sorted(GOOD)), json_values)
def test_a_valid_event_with_any_field_replaced(field: str, value: object) -> None:
    decodes_or_dead_letters(json.dumps({**GOOD, field: value}).encode())


@FUZZ
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=80))
def test_any_text_in_text_fields_fits_the_stores_or_is_refused(text: str) -> None:
    for field in ("title", "brand", "category"):
        try:
            event = decode_json_event(
                json.dumps({**GOOD, field: text}).encode(), parse_product_event
            )
        except ProcessingError as exc:
            assert exc.kind is ErrorKind.SCHEMA_VIOLATION
            continue
        stored = getattr(event, field)
        assert "\x00" not in stored and len(stored.encode()) <= (
            64 if field == "category" else 2048
        )


def images() -> list[bytes]:
    garment = synthetic_garment()
    return [
        encode(garment),
        encode(garment, "JPEG", quality=80),
        encode(garment, "WEBP"),
        encode(garment, "GIF"),
        encode(garment, "TIFF"),
        encode(garment, "BMP"),
        flat_png(300, 200, "RGBA"),
        flat_png(2000, 2000, "L"),
    ]


@FUZZ
@given(
    st.sampled_from(images()),
    st.lists(st.tuples(st.integers(0, 5000), st.integers(0, 255)), max_size=8),
    st.integers(0, 400),
)
def test_damaged_images_decode_small_or_are_refused(
    image: bytes, flips: list[tuple[int, int]], cut: int
) -> None:
    data = bytearray(image)
    for position, byte in flips:
        data[position % len(data)] = byte
    damaged = bytes(data[: max(1, len(data) - cut)])
    try:
        rgb = decode_image(damaged, SMALL)
    except ProcessingError as exc:
        assert exc.kind in (
            ErrorKind.UNDECODABLE_IMAGE,
            ErrorKind.IMAGE_TOO_LARGE,
            ErrorKind.UNSUPPORTED_IMAGE_FORMAT,
        )
        return
    assert rgb.ndim == 3 and rgb.shape[2] == 3 and max(rgb.shape[:2]) <= SMALL.decode_side


@FUZZ
@given(st.integers(1, 200_000), st.integers(1, 200_000), st.sampled_from(["L", "RGB", "RGBA"]))
def test_any_declared_size_is_refused_or_decoded_small(width: int, height: int, mode: str) -> None:
    if width * height > 3_000_000:  # larger ones only as a header (never made in full)
        header = io.BytesIO()
        Image.new(mode, (1, 1)).save(header, format="PNG")
        data = bytearray(header.getvalue())
        data[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
        blob = bytes(data)
    else:
        blob = flat_png(width, height, mode)
    try:
        rgb = decode_image(blob, SMALL)
    except ProcessingError as exc:
        assert exc.kind in (ErrorKind.IMAGE_TOO_LARGE, ErrorKind.UNDECODABLE_IMAGE)
        return
    assert max(rgb.shape[:2]) <= SMALL.decode_side


URL_TEXT = st.text(alphabet=string.printable + "\u00e9\u0130\ufff9[]@:%", max_size=60)


@FUZZ
@given(st.sampled_from(["http://", "https://", "ftp://", "file://", "", "//"]), URL_TEXT)
def test_any_url_is_vetted_or_refused_without_touching_the_network(scheme: str, rest: str) -> None:
    policy = FetchPolicy(allowed_hosts=frozenset({"cdn.example"}), timeout_s=0.5)
    try:
        target = vet(scheme + rest, policy)
    except ProcessingError as exc:
        assert exc.kind is ErrorKind.IMAGE_UNAVAILABLE
        return
    assert target.host == "cdn.example" and target.url.startswith(("http://", "https://"))


@FUZZ
@given(URL_TEXT)
def test_any_local_path_is_read_inside_the_root_or_refused(
    tmp_path_factory: object, rest: str
) -> None:
    root = Path("/nonexistent-root")
    try:
        read_image_bytes(ImageRef(path="/" + rest), ImageLimits(allowed_roots=(root,)))
    except ProcessingError as exc:
        assert exc.kind in (ErrorKind.IMAGE_UNAVAILABLE, ErrorKind.IMAGE_TOO_LARGE)
    except ValueError:  # the event contract refuses it before any read
        pass
