import itertools
import math

import pytest

from gafu import recipe
from gafu.prep.geometry import _crop_fraction, bucket_placement, pad_placement


@pytest.mark.parametrize(
    ("size", "bars", "content"),
    [
        ((1200, 800), "letterboxed", (1536, 1024)),  # landscape: bars top and bottom
        ((600, 900), "pillarboxed", (1024, 1536)),  # portrait: bars left and right
        ((700, 700), None, (1536, 1536)),
        ((1000, 990), None, (1536, 1521)),  # 15 px in total: a sliver, not tagged
        ((1000, 970), "letterboxed", (1536, 1490)),  # 46 px: visible bars
    ],
)
def test_pad_centres_the_whole_picture_and_names_its_bars(size, bars, content):
    placement = pad_placement(*size, side=1536)
    assert placement.output_size == (1536, 1536)
    assert placement.content_size == content
    assert placement.bars == bars
    assert placement.crop is None and placement.box == (0, 0, *size)
    left, top = placement.offset
    # centred: the two bars differ by at most one pixel
    assert abs(left - (1536 - content[0] - left)) <= 1 and abs(top - (1536 - content[1] - top)) <= 1


def test_pad_scale_is_output_pixels_per_source_pixel():
    assert pad_placement(8, 8, 1024).scale == 128
    assert pad_placement(3072, 1000, 1536).scale == 0.5


SIZES = [(w, h) for w, h in itertools.product([8, 150, 333, 640, 999, 1024, 1536, 2000, 4321], repeat=2)]
LIMITS = [(1536, 1536 * 1536), (1536, 1024 * 1024), (1024, 1024 * 1024)]


@pytest.mark.parametrize(("max_side", "max_area"), LIMITS)
def test_bucket_sizes_are_multiples_of_64_within_the_limits(max_side, max_area):
    for width, height in SIZES:
        placement = bucket_placement(width, height, max_side=max_side, max_area=max_area)
        out_w, out_h = placement.output_size
        assert out_w % recipe.BUCKET_STEP == 0 and out_h % recipe.BUCKET_STEP == 0, (width, height)
        assert max(out_w, out_h) <= max_side and out_w * out_h <= max_area, (width, height)
        assert placement.content_size == placement.output_size and placement.bars is None
        # the kept box has the output's aspect ratio (to a source pixel), so nothing is stretched
        left, top, right, bottom = placement.box
        assert 0 <= left < right <= width and 0 <= top < bottom <= height
        kept_aspect = (right - left) / (bottom - top)
        assert abs(kept_aspect / (out_w / out_h) - 1) <= 1 / min(bottom - top, right - left)


@pytest.mark.parametrize(("max_side", "max_area"), LIMITS)
def test_bucket_crop_is_no_larger_than_flooring_both_sides(max_side, max_area):
    """The chosen size never crops more than the plain choice (both sides rounded down)."""
    for width, height in SIZES:
        fit = min(max_side / max(width, height), math.sqrt(max_area / (width * height)))
        floor = [max(64, int(side * fit) // 64 * 64) for side in (width, height)]
        placement = bucket_placement(width, height, max_side=max_side, max_area=max_area)
        assert _crop_fraction(width, height, *placement.output_size) <= _crop_fraction(width, height, *floor)


@pytest.mark.parametrize(
    ("size", "expected"),
    [((1536, 1024), (1536, 1024)), ((3072, 2048), (1536, 1024)), ((768, 1152), (1024, 1536))],
)
def test_bucket_keeps_pictures_that_already_fit_whole(size, expected):
    placement = bucket_placement(*size)
    assert placement.output_size == expected
    assert placement.crop is None and placement.crop_fraction == 0


def test_bucket_reports_the_crop_of_an_odd_aspect():
    placement = bucket_placement(2000, 150, max_side=1536, max_area=1536 * 1536)
    assert placement.output_size == (1536, 128)
    assert placement.crop is not None
    left, top, right, bottom = placement.crop
    assert (top, bottom) == (0, 150) and left > 0 and right < 2000  # cut at the sides, centred
    assert abs(left - (2000 - right)) <= 1
    assert 0 < placement.crop_fraction < 0.1


def test_bucket_respects_the_training_area():
    """SDXL trains on ~1024² areas: a square becomes 1024², not 1536², so no trainer rescales it."""
    placement = bucket_placement(3000, 3000, max_side=1536, max_area=1024 * 1024)
    assert placement.output_size == (1024, 1024)
    wide = bucket_placement(3000, 2000, max_side=1536, max_area=1024 * 1024)
    assert wide.output_size[0] * wide.output_size[1] <= 1024 * 1024 and wide.output_size[0] > 1024
