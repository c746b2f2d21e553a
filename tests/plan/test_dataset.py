import pytest

from gafu.plan.dataset import bucket_size, micro_batches
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


def _set(name, buckets, repeats, samples):
    return SetPlan(
        name=name,
        concept_folders=[],
        pictures=sum(buckets.values()),
        repeats=repeats,
        samples_per_epoch=samples,
        captions_missing=0,
        sizes=buckets,
        buckets=buckets,
    )


def test_micro_batches_round_up_per_bucket():
    target = _set("target", {"1024x1024": 10, "1216x832": 3}, 2, 26)
    assert micro_batches(target, None, 4) == 5 + 2  # ceil(20 / 4) + ceil(6 / 4)
    reg = _set("reg", {"1024x1024": 13}, 2, 26)
    assert micro_batches(target, reg, 4) == 12 + 2  # ceil((20 + 26) / 4) + ceil(6 / 4)
    assert micro_batches(target, reg, 1) == 52
