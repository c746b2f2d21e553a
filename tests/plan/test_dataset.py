"""Bucket sizes and epoch counts as kohya's sd-scripts (48d368f) makes them (D4, D5, P3).

The expected values are sd-scripts' own rules, written out below with their file and lines.
"""

import math
import random

import pytest

from gafu.plan.dataset import bucket_size, micro_batches, reg_repeats, resized_size
from gafu.plan.model import SetPlan


@pytest.mark.parametrize(
    ("size", "resolution", "bucket"),
    [
        ((1024, 1024), 1024, (1024, 1024)),  # prepared square: trains as is
        ((1536, 1536), 1536, (1536, 1536)),
        ((1000, 1000), 1024, (960, 960)),  # smaller: not upscaled, cut to multiples of 64
        ((1536, 1536), 1024, (1024, 1024)),  # larger: scaled down to the area
        ((1536, 1024), 1024, (1216, 832)),  # keeps the aspect ratio as near as 64-steps allow
        ((832, 1216), 1024, (832, 1216)),
        ((1024, 1536), 1536, (1024, 1536)),  # D4b bucket-mode picture within the area
    ],
)
def test_bucket_size(size, resolution, bucket):
    width, height = bucket_size(*size, resolution)
    assert (width, height) == bucket
    assert width % 64 == 0 and height % 64 == 0
    assert width * height <= max(resolution * resolution, size[0] * size[1])


def _set(name, buckets, repeats, bucket_samples):
    return SetPlan(
        name=name,
        concept_folders=[],
        pictures=sum(buckets.values()),
        repeats=repeats,
        samples_per_epoch=sum(bucket_samples.values()),
        captions_missing=0,
        sizes=buckets,
        buckets=buckets,
        bucket_samples=bucket_samples,
    )


def test_micro_batches_round_up_per_bucket():
    target = _set("target", {"1024x1024": 10, "1216x832": 3}, 2, {"1024x1024": 20, "1216x832": 6})
    assert micro_batches(target, None, 4) == 5 + 2  # ceil(20 / 4) + ceil(6 / 4)
    reg = _set("reg", {"1024x1024": 13}, 2, {"1024x1024": 26})
    assert micro_batches(target, reg, 4) == 12 + 2  # ceil((20 + 26) / 4) + ceil(6 / 4)
    assert micro_batches(target, reg, 1) == 52


def _kohya_select_resized(width, height, resolution, steps=64):
    """sd-scripts' BucketManager.select_bucket with bucket_no_upscale (train_util.py lines 309-341)."""
    max_area = resolution * resolution

    def round_to_steps(x):  # train_util.py lines 282-284
        x = int(x + 0.5)
        return x - x % steps

    aspect_ratio = width / height
    if width * height > max_area:
        resized_width = math.sqrt(max_area * aspect_ratio)
        resized_height = max_area / resized_width
        b_width_rounded = round_to_steps(resized_width)
        b_height_in_wr = round_to_steps(b_width_rounded / aspect_ratio)
        ar_width_rounded = b_width_rounded / b_height_in_wr
        b_height_rounded = round_to_steps(resized_height)
        b_width_in_hr = round_to_steps(b_height_rounded * aspect_ratio)
        ar_height_rounded = b_width_in_hr / b_height_rounded
        if abs(ar_width_rounded - aspect_ratio) < abs(ar_height_rounded - aspect_ratio):
            resized_size = (b_width_rounded, int(b_width_rounded / aspect_ratio + 0.5))
        else:
            resized_size = (int(b_height_rounded * aspect_ratio + 0.5), b_height_rounded)
    else:
        resized_size = (width, height)
    bucket = (resized_size[0] - resized_size[0] % steps, resized_size[1] - resized_size[1] % steps)
    return resized_size, bucket


def test_resized_size_and_bucket_are_sd_scripts_select_bucket():
    rng = random.Random(17)
    sizes = [(rng.randint(300, 4000), rng.randint(300, 4000)) for _ in range(2000)]
    for width, height in sizes:
        for resolution in (1024, 1536):
            resized, bucket = _kohya_select_resized(width, height, resolution)
            assert resized_size(width, height, resolution) == resized, (width, height, resolution)
            assert bucket_size(width, height, resolution) == bucket


def _kohya_reg_repeats(folder_repeats, num_train_images):
    """DreamBoothDataset.__init__ (train_util.py lines 2166-2182): the reg pictures' num_repeats."""
    num_repeats = [0] * len(folder_repeats)
    if sum(folder_repeats) == 0:
        return num_repeats
    n = 0
    first_loop = True
    while n < num_train_images:
        for i, repeats in enumerate(folder_repeats):
            if first_loop:
                num_repeats[i] = repeats  # register_image with the subset's num_repeats
                n += repeats
            else:
                num_repeats[i] += 1  # info.num_repeats += 1
                n += 1
            if n >= num_train_images:
                break
        first_loop = False
    return num_repeats


@pytest.mark.parametrize(
    ("folder_repeats", "target_samples"),
    [
        ([2] * 40, 80),  # as many reg pictures as target pictures: each twice
        ([2] * 10, 60),  # fewer: cycled in name order until they match
        ([2] * 100, 80),  # more: the first 40 by name, the rest unused
        ([1] * 7, 30),
        ([2] * 5 + [3] * 4, 51),  # two reg folders with different repeats
        ([3] * 10, 80),  # the first pass passes the target by 1 (kohya's count: 81)
    ],
)
def test_reg_repeats_are_sd_scripts(folder_repeats, target_samples):
    shown = reg_repeats(folder_repeats, target_samples)
    assert shown == _kohya_reg_repeats(folder_repeats, target_samples)
    assert target_samples <= sum(shown) < target_samples + max(folder_repeats)


def test_reg_repeats_at_random_match_sd_scripts():
    rng = random.Random(3)
    for _ in range(300):
        folder_repeats = [rng.choice([1, 2, 3])] * rng.randint(1, 60)
        target_samples = rng.randint(1, 250)
        assert reg_repeats(folder_repeats, target_samples) == _kohya_reg_repeats(
            folder_repeats, target_samples
        )
