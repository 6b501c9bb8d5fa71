import numpy as np
import pytest

from processors.colour import COLOUR_VECTOR_DIM, colour_features, rgb_to_lab
from processors.roi import Box, foreground_region, square_crop
from tests.synthetic import synthetic_garment


@pytest.mark.parametrize(
    ("box", "colour", "background"),
    [
        ((30, 40, 90, 130), (200, 30, 40), (240, 240, 240)),
        ((5, 10, 50, 60), (40, 80, 200), (20, 20, 20)),
        ((60, 100, 118, 158), (240, 220, 50), (120, 120, 120)),
    ],
)
def test_foreground_box_finds_the_item(
    box: tuple[int, int, int, int], colour: tuple[int, int, int], background: tuple[int, int, int]
) -> None:
    rgb = synthetic_garment(box=box, colour=colour, background=background)
    region = foreground_region(rgb, margin=0.0)
    assert region.box.iou(Box(*box)) > 0.95


def test_plain_image_gives_the_whole_frame() -> None:
    rgb = np.full((50, 40, 3), 200, dtype=np.uint8)
    assert foreground_region(rgb).box == Box(0, 0, 40, 50)


def test_specks_do_not_stretch_the_box() -> None:
    rgb = synthetic_garment(box=(30, 40, 90, 130))
    rgb[2, 2] = (0, 0, 0)
    rgb[155, 115] = (0, 0, 0)
    assert foreground_region(rgb, margin=0.0).box.iou(Box(30, 40, 90, 130)) > 0.95


def test_square_crop_pads_with_the_backdrop() -> None:
    rgb = synthetic_garment(box=(30, 40, 90, 130))
    region = foreground_region(rgb, margin=0.0)
    crop = square_crop(rgb, region)
    assert crop.shape[0] == crop.shape[1] == max(region.box.width, region.box.height)
    assert np.abs(crop[0, 0].astype(int) - 240).max() <= 5  # padding is the backdrop colour


@pytest.mark.parametrize(
    ("colour", "name"),
    [
        ((200, 30, 40), "red"),
        ((40, 80, 200), "blue"),
        ((30, 150, 60), "green"),
        ((20, 20, 20), "black"),
        ((240, 150, 190), "pink"),
    ],
)
def test_primary_colour_is_measured_inside_the_item(
    colour: tuple[int, int, int], name: str
) -> None:
    # a white backdrop covering most of the frame must not win
    rgb = synthetic_garment(box=(50, 60, 80, 100), colour=colour, background=(250, 250, 250))
    feats = colour_features(rgb, foreground_region(rgb))
    assert feats.primary == name
    assert feats.fractions[name] > 0.8
    assert len(feats.vector) == COLOUR_VECTOR_DIM


def test_lab_of_white_and_black() -> None:
    lab = rgb_to_lab(np.array([[255, 255, 255], [0, 0, 0]], dtype=np.uint8))
    assert lab[0, 0] == pytest.approx(100, abs=0.5)
    assert lab[1, 0] == pytest.approx(0, abs=0.5)
