import base64
import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from processors.errors import ImageError
from processors.images import (
    ImageLimits,
    decode_base64_image,
    decode_image,
    load_image,
    read_image_bytes,
)
from schemas.dead_letter import ErrorKind
from schemas.events import ImageRef
from tests.synthetic import encode, synthetic_garment


def test_decodes_png_to_rgb() -> None:
    rgb = synthetic_garment()
    out = decode_image(encode(rgb), ImageLimits())
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert np.array_equal(out, rgb)


def test_grey_and_alpha_images_become_rgb_on_white() -> None:
    rgba = np.zeros((10, 10, 4), dtype=np.uint8)  # fully transparent
    out = decode_image(encode(rgba), ImageLimits())
    assert out.shape == (10, 10, 3)
    assert (out == 255).all()
    grey = np.full((5, 6), 77, dtype=np.uint8)
    assert decode_image(encode(grey), ImageLimits()).shape == (5, 6, 3)


def test_exif_orientation_is_applied() -> None:
    rgb = synthetic_garment(size=(40, 20), box=(0, 0, 10, 20))
    img = Image.fromarray(rgb)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif.tobytes())
    out = decode_image(buf.getvalue(), ImageLimits())
    assert out.shape[:2] == (40, 20)  # width and height swapped


def test_garbage_bytes_are_undecodable() -> None:
    with pytest.raises(ImageError) as err:
        decode_image(b"definitely not an image", ImageLimits())
    assert err.value.kind is ErrorKind.UNDECODABLE_IMAGE


def test_truncated_png_is_undecodable() -> None:
    data = encode(synthetic_garment())
    with pytest.raises(ImageError) as err:
        decode_image(data[: len(data) // 2], ImageLimits())
    assert err.value.kind is ErrorKind.UNDECODABLE_IMAGE


def test_oversized_bytes_are_refused() -> None:
    data = encode(synthetic_garment())
    with pytest.raises(ImageError) as err:
        decode_image(data, ImageLimits(max_bytes=len(data) - 1))
    assert err.value.kind is ErrorKind.IMAGE_TOO_LARGE


def test_decompression_bomb_is_refused_from_the_header() -> None:
    # 6000x6000 single-colour PNG: tiny on disk, 36M pixels when decoded.
    bomb = encode(np.zeros((6000, 6000), dtype=np.uint8))
    assert len(bomb) < 200_000
    with pytest.raises(ImageError) as err:
        decode_image(bomb, ImageLimits(max_pixels=1_000_000))
    assert err.value.kind is ErrorKind.IMAGE_TOO_LARGE
    assert "pixels" in str(err.value)


def test_unaccepted_format_is_refused() -> None:
    data = encode(synthetic_garment(), fmt="BMP")
    with pytest.raises(ImageError) as err:
        decode_image(data, ImageLimits(formats=frozenset({"PNG"})))
    assert err.value.kind is ErrorKind.UNSUPPORTED_IMAGE_FORMAT


def test_sources_path_url_and_base64(tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    data = encode(synthetic_garment())
    file = tmp_path / "a.png"
    file.write_bytes(data)
    limits = ImageLimits(allowed_roots=(tmp_path,))
    assert read_image_bytes(ImageRef(path=str(file)), limits) == data
    assert read_image_bytes(ImageRef(url=file.as_uri()), limits) == data
    b64 = base64.b64encode(data).decode()
    assert read_image_bytes(ImageRef(data_base64=b64), limits) == data


def test_missing_file_and_invalid_base64(tmp_path: object) -> None:
    with pytest.raises(ImageError) as err:
        load_image(ImageRef(path="/nonexistent/x.png"), ImageLimits())
    assert err.value.kind is ErrorKind.IMAGE_UNAVAILABLE
    with pytest.raises(ImageError) as err:
        load_image(ImageRef(data_base64="!!!not-base64!!!"), ImageLimits())
    assert err.value.kind is ErrorKind.UNDECODABLE_IMAGE


def test_paths_outside_allowed_roots_are_refused(tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    (tmp_path / "ok").mkdir()
    inside = tmp_path / "ok" / "a.png"
    inside.write_bytes(encode(synthetic_garment()))
    limits = ImageLimits(allowed_roots=(tmp_path / "ok",))
    assert load_image(ImageRef(path=str(inside)), limits).shape[2] == 3
    with pytest.raises(ImageError, match="outside the allowed"):
        load_image(ImageRef(path=str(tmp_path / "ok" / ".." / "x.png")), limits)


def test_base64_is_refused_by_length_before_decoding() -> None:
    small = ImageLimits(max_bytes=30)
    with pytest.raises(ImageError) as big:
        decode_base64_image("A" * 48, small)
    assert big.value.kind is ErrorKind.IMAGE_TOO_LARGE
    with pytest.raises(ImageError, match="not valid base64"):
        decode_base64_image("###", small)
    assert decode_base64_image("aGk=", small) == b"hi"


def test_local_files_only_inside_allowed_roots_and_only_regular_files(tmp_path: Path) -> None:
    """An event naming /etc/passwd, /dev/zero or a FIFO is one dead letter, read or blocked
    on never (the worker's only executor thread would hang on a FIFO)."""
    root = tmp_path / "root"
    root.mkdir()
    image = root / "a.png"
    image.write_bytes(encode(synthetic_garment()))
    (root / "to-passwd.png").symlink_to("/etc/passwd")
    os.mkfifo(root / "fifo.png")
    (root / "dir.png").mkdir()
    (root / "big.png").write_bytes(b"\0" * 101)

    def refused(ref: ImageRef, limits: ImageLimits, why: str) -> ErrorKind:
        with pytest.raises(ImageError, match=why) as err:
            read_image_bytes(ref, limits)
        return err.value.kind

    closed = ImageLimits()  # no roots configured: no local file at all
    for ref in (ImageRef(path=str(image)), ImageRef(url=image.as_uri())):
        assert refused(ref, closed, "no image roots") is ErrorKind.IMAGE_UNAVAILABLE
    limits = ImageLimits(allowed_roots=(root,), max_bytes=100)
    assert read_image_bytes(
        ImageRef(path=str(root / "big.png")), ImageLimits(allowed_roots=(root,))
    )
    for path, why in (
        ("/etc/passwd", "outside"),
        ("/dev/zero", "outside"),
        (str(root / ".." / "root" / ".." / "x.png"), "outside"),
        (str(root / "to-passwd.png"), "outside"),  # a symlink out of the root
        (str(root / "fifo.png"), "not a regular file"),
        (str(root / "dir.png"), "not a regular file|cannot read"),
        (str(root / "missing.png"), "cannot read"),
    ):
        assert refused(ImageRef(path=path), limits, why) is ErrorKind.IMAGE_UNAVAILABLE
    assert refused(ImageRef(path=str(root / "big.png")), limits, "over the") is (
        ErrorKind.IMAGE_TOO_LARGE
    )
    devices = ImageLimits(allowed_roots=(Path("/dev"),))
    assert refused(ImageRef(path="/dev/zero"), devices, "not a regular file") is (
        ErrorKind.IMAGE_UNAVAILABLE
    )


def test_a_nul_byte_in_a_file_url_is_refused_not_raised(tmp_path: Path) -> None:
    with pytest.raises(ImageError) as refused:
        read_image_bytes(
            ImageRef(url=f"file://{tmp_path}/a%00b.png"), ImageLimits(allowed_roots=(tmp_path,))
        )
    assert refused.value.kind is ErrorKind.IMAGE_UNAVAILABLE
