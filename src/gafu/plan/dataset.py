"""The prepared dataset as the trainer sees it: counts, repeats, picture sizes, buckets (D4, D5, P3)."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from gafu import recipe
from gafu.config import SetName
from gafu.errors import GafuError, os_error_message
from gafu.layout import DatasetPicture
from gafu.plan.model import SetPlan


def picture_size(path: Path) -> tuple[int, int]:
    """`(width, height)` from the file's header; the pixels are not decoded."""
    try:
        with Image.open(path) as image:
            return image.size
    except OSError as exc:
        if isinstance(exc, UnidentifiedImageError) or exc.errno is None:
            raise GafuError(
                f"{path} is not a readable picture", path=path, hint="run `gafu prep` again to rebuild it"
            ) from exc
        raise os_error_message(exc, path, "read") from exc


def bucket_size(width: int, height: int, resolution: int, step: int = recipe.BUCKET_STEP) -> tuple[int, int]:
    """The size a picture trains at with kohya-style buckets that never upscale.

    A picture whose area exceeds resolution² is scaled down to that area keeping its aspect
    ratio, the side rounded to `step` being the one that keeps the aspect ratio best; then both
    sides are cut down to multiples of `step` (D4b: this is the cropping prep avoids). This is
    sd-scripts' `BucketManager.select_bucket` with `bucket_no_upscale`, so the kohya export and
    gafu's own trainer bucket alike.
    """
    max_area = resolution * resolution
    if width * height > max_area:
        aspect = width / height
        scaled_width = math.sqrt(max_area * aspect)
        scaled_height = max_area / scaled_width
        by_width = _round_to_step(scaled_width, step)
        by_height = _round_to_step(scaled_height, step)
        width_error = abs(by_width / _round_to_step(by_width / aspect, step) - aspect)
        height_error = abs(_round_to_step(by_height * aspect, step) / by_height - aspect)
        if width_error < height_error:
            width, height = by_width, int(by_width / aspect + 0.5)
        else:
            width, height = int(by_height * aspect + 0.5), by_height
    return width - width % step, height - height % step


def _round_to_step(value: float, step: int) -> int:
    rounded = int(value + 0.5)
    return max(step, rounded - rounded % step)


def size_key(size: tuple[int, int]) -> str:
    """`"WxH"`."""
    return f"{size[0]}x{size[1]}"


def describe_set(
    root: Path, which: SetName, pictures: list[DatasetPicture], resolution: int, *, samples_per_epoch: int
) -> SetPlan:
    """A SetPlan for the pictures of one set (sizes read from the files' headers)."""
    sizes: Counter[str] = Counter()
    buckets: Counter[str] = Counter()
    for picture in pictures:
        width, height = picture_size(picture.path)
        sizes[size_key((width, height))] += 1
        buckets[size_key(bucket_size(width, height, resolution))] += 1
    folders = sorted({p.path.parent.relative_to(root).as_posix() for p in pictures})
    return SetPlan(
        name=which,
        concept_folders=folders,
        pictures=len(pictures),
        repeats=set_repeats(pictures),
        samples_per_epoch=samples_per_epoch,
        captions_missing=sum(not p.caption_path.is_file() for p in pictures),
        sizes=dict(sorted(sizes.items())),
        buckets=dict(sorted(buckets.items())),
    )


def set_repeats(pictures: list[DatasetPicture]) -> int:
    """The repeats of a set's concept folders (the largest where they differ; 0 for no pictures)."""
    return max((p.repeats for p in pictures), default=0)


def target_samples(pictures: list[DatasetPicture]) -> int:
    """Target samples per epoch: each picture times its folder's repeats (P2: repeats × N)."""
    return sum(p.repeats for p in pictures)


def micro_batches(target: SetPlan, reg: SetPlan | None, batch_size: int) -> int:
    """Batches of `batch_size` in one epoch: buckets are batched apart, so each bucket rounds up.

    Regularization samples (as many as target samples, P3) are spread over the reg buckets in
    proportion to their pictures, as sd-scripts repeats the reg pictures in turn.
    """
    per_bucket: Counter[str] = Counter()
    for size, count in target.buckets.items():
        per_bucket[size] += count * target.repeats
    if reg is not None and reg.pictures:
        for size, count in reg.buckets.items():
            per_bucket[size] += reg.samples_per_epoch * count / reg.pictures
    return sum(math.ceil(round(samples, 6) / batch_size) for samples in per_bucket.values())


def largest_bucket(*sets: SetPlan | None) -> tuple[int, int]:
    """The largest training size (by area) over the given sets."""
    sizes = [tuple(int(v) for v in key.split("x")) for s in sets if s is not None for key in s.buckets]
    return max(sizes, key=lambda wh: (wh[0] * wh[1], wh))
