"""The prepared dataset as the trainer sees it: counts, repeats, picture sizes, buckets (D4, D5, P3).

Counted as kohya's sd-scripts counts a DreamBooth-style dataset: each concept folder is a subset
with its own repeats, regularization pictures are repeated in name order until they match the
target's samples, and every bucket is batched apart.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from gafu import recipe
from gafu.config import SetName
from gafu.errors import GafuError, os_error_message
from gafu.families import ModelFamily
from gafu.layout import CAPTION_SUFFIX, DatasetPicture, parse_concept_folder
from gafu.plan.model import DatasetPlan, SetPlan
from gafu.plan.sources import Sources
from gafu.project import Project


def dataset_plan(
    project: Project,
    family: ModelFamily,
    sources: Sources,
    warnings: list[str],
    notes: list[str],
    held_out: frozenset[str] = frozenset(),
) -> DatasetPlan:
    """The dataset section: both sets as the trainer will see them, at the training side (D4, D5)."""
    config = project.config
    resolution = config.train.resolution or family.training_side
    sources.set(
        "dataset.resolution",
        None,
        sources.override("train", "resolution", f"family {family.name} (D4): {family.training_side}")
        if config.train.resolution
        else f"family {family.name} (D4)",
    )
    target_pictures, reg_pictures = _prepared_pictures(project, warnings, held_out)
    target = describe_set(
        project.root, "target", target_pictures, resolution, shown=target_shown(target_pictures)
    )
    reg = None
    if reg_pictures:
        reg_pictures = sorted(reg_pictures, key=kohya_order)
        reg_shown = reg_repeats([p.repeats for p in reg_pictures], target.samples_per_epoch)
        reg = describe_set(project.root, "reg", reg_pictures, resolution, shown=reg_shown)
        if 0 in reg_shown:
            notes.append(
                f"{reg_shown.count(0)} of the {len(reg_shown)} regularization pictures are not shown: "
                f"an epoch needs {target.samples_per_epoch} regularization samples (P3) and, as in "
                "sd-scripts, they are taken in name order with their folder's repeats"
            )
    _dataset_remarks(project, target, reg, resolution, warnings, notes)
    for name in ("target", "reg"):
        sources.set(
            f"dataset.{name}", None, f"dataset ({project.set_dir(name).relative_to(project.root).as_posix()})"
        )
    if not config.train.regularization:
        sources.set("dataset.reg", None, "gafu.toml [train] regularization = false")
    sources.set("dataset.bucket_step", None, "recipe D4b")
    sources.set("dataset.bucket_no_upscale", None, "gafu default: pictures are prepared at their size (D4)")
    sources.set("dataset.largest_bucket", None, "dataset")
    sources.set("dataset.caption_extension", None, "recipe D5")
    sources.set("dataset.cache_latents", None, "gafu default: latents cached once, VAE off the GPU")
    return DatasetPlan(
        target=target,
        reg=reg,
        resolution=resolution,
        bucket_step=recipe.BUCKET_STEP,
        bucket_no_upscale=True,
        largest_bucket=size_key(largest_bucket(target, reg)),
        caption_extension=CAPTION_SUFFIX,
        keep_tokens=sources.config("dataset.keep_tokens", "train", "keep_tokens"),
        shuffle_caption=sources.config("dataset.shuffle_caption", "train", "shuffle_caption"),
        caption_dropout_rate=sources.config("dataset.caption_dropout_rate", "train", "caption_dropout_rate"),
        caption_tag_dropout_rate=sources.config(
            "dataset.caption_tag_dropout_rate", "train", "caption_tag_dropout_rate"
        ),
        caption_dropout_every_n_epochs=sources.config(
            "dataset.caption_dropout_every_n_epochs", "train", "caption_dropout_every_n_epochs"
        ),
        prior_loss_weight=sources.set("dataset.prior_loss_weight", recipe.PRIOR_LOSS_WEIGHT, "recipe P3"),
        cache_latents=True,
    )


def _prepared_pictures(
    project: Project, warnings: list[str], held_out: frozenset[str]
) -> tuple[list[DatasetPicture], list[DatasetPicture]]:
    """The pictures training uses: the held-out probe pictures left out (`[eval] holdout`)."""

    def trained(which) -> list[DatasetPicture]:
        pictures = project.pictures(which)
        return [p for p in pictures if p.path.relative_to(project.root).as_posix() not in held_out]

    target = trained("target")
    if not target:
        raise GafuError(
            f"no prepared pictures in {project.set_dir('target')}",
            path=project.set_dir("target"),
            hint="run `gafu prep` first",
        )
    if not project.config.train.regularization:
        return target, []  # D2 left out on purpose (a run to compare with, `gafu eval --compare`)
    reg = trained("reg")
    if project.has_sources("reg") and not reg:
        raise GafuError(
            f"gafu.toml names a regularization folder but {project.set_dir('reg')} "
            "holds no prepared pictures",
            path=project.set_dir("reg"),
            hint="run `gafu prep` first (or empty [sources] reg to train without regularization)",
        )
    if reg and not project.has_sources("reg"):
        warnings.append(
            f"{project.set_dir('reg')} has {len(reg)} pictures though gafu.toml names no regularization "
            "folder; they are used (remove the folder to train without them)"
        )
    return target, reg


def _dataset_remarks(
    project: Project,
    target: SetPlan,
    reg: SetPlan | None,
    resolution: int,
    warnings: list[str],
    notes: list[str],
) -> None:
    config_repeats = project.config.project.repeats
    stale = _stale_concept_folders(project, target)
    if stale:
        warnings.append(
            f"gafu.toml says repeats = {config_repeats} but the dataset's folder {stale[0]} does not; "
            "the plan follows the dataset (run `gafu prep` again to apply the new repeats)"
        )
    if reg is None:
        off = " ([train] regularization = false)" if not project.config.train.regularization else ""
        warnings.append(
            f"no regularization set{off}: the style will leak into every tag of the target set (D2)"
        )
    for plan in filter(None, (target, reg)):
        if plan.captions_missing:
            warnings.append(
                f"{plan.captions_missing} {plan.name} pictures have no caption yet: run `gafu tag`"
            )
    area = resolution * resolution
    for plan in filter(None, (target, reg)):
        sizes = [parse_size_key(s) for s in plan.sizes]
        if any(w * h > area for w, h in sizes):
            notes.append(
                f"some {plan.name} pictures are larger than {resolution}² and are scaled down to that area"
            )
        if any(w * h < area for w, h in sizes):
            notes.append(
                f"some {plan.name} pictures are smaller than {resolution}²: they train at their own size"
            )


def _stale_concept_folders(project: Project, target: SetPlan) -> list[str]:
    """The target set's own concept folder under other repeats than gafu.toml's (prep not re-run).

    Concept folders kept from the originals (kohya's `<repeats>_<name>`, D5) have repeats of
    their own and are not compared.
    """
    own = parse_concept_folder(project.concept_dir("target").name)
    return [
        folder
        for folder in target.concept_folders
        if (parsed := parse_concept_folder(Path(folder).name))
        and own
        and parsed[1] == own[1]
        and parsed != own
    ]


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

    `resized_size` cut down to multiples of `step` (D4b: this is the cropping prep avoids). This
    is sd-scripts' `BucketManager.select_bucket` with `bucket_no_upscale`, so the kohya export and
    gafu's own trainer bucket alike.
    """
    width, height = resized_size(width, height, resolution, step)
    return width - width % step, height - height % step


def resized_size(width: int, height: int, resolution: int, step: int = recipe.BUCKET_STEP) -> tuple[int, int]:
    """The size a picture is scaled to before it is trimmed to its bucket.

    A picture within resolution² keeps its size; a larger one is scaled down to that area keeping
    its aspect ratio, the side rounded to `step` being the one that keeps the aspect ratio best
    (sd-scripts' `select_bucket`, library/train_util.py lines 309-334 at 48d368f).
    """
    max_area = resolution * resolution
    if width * height <= max_area:
        return width, height
    aspect = width / height
    scaled_width = math.sqrt(max_area * aspect)
    scaled_height = max_area / scaled_width
    by_width = _round_to_step(scaled_width, step)
    by_height = _round_to_step(scaled_height, step)
    width_error = abs(by_width / _round_to_step(by_width / aspect, step) - aspect)
    height_error = abs(_round_to_step(by_height * aspect, step) / by_height - aspect)
    if width_error < height_error:
        return by_width, int(by_width / aspect + 0.5)
    return int(by_height * aspect + 0.5), by_height


def _round_to_step(value: float, step: int) -> int:
    rounded = int(value + 0.5)
    return max(step, rounded - rounded % step)


def size_key(size: tuple[int, int]) -> str:
    """`"WxH"`."""
    return f"{size[0]}x{size[1]}"


def parse_size_key(key: str) -> tuple[int, int]:
    """`(width, height)` from `"WxH"`."""
    width, height = key.split("x")
    return int(width), int(height)


def describe_set(
    root: Path, which: SetName, pictures: list[DatasetPicture], resolution: int, *, shown: list[int]
) -> SetPlan:
    """A SetPlan for one set's pictures, each shown `shown[i]` times per epoch (sizes from the headers)."""
    sizes: Counter[str] = Counter()
    buckets: Counter[str] = Counter()
    bucket_samples: Counter[str] = Counter()
    for picture, times in zip(pictures, shown, strict=True):
        width, height = picture_size(picture.path)
        bucket = size_key(bucket_size(width, height, resolution))
        sizes[size_key((width, height))] += 1
        buckets[bucket] += 1
        if times:
            bucket_samples[bucket] += times
    folders = sorted({p.path.parent.relative_to(root).as_posix() for p in pictures})
    return SetPlan(
        name=which,
        concept_folders=folders,
        pictures=len(pictures),
        repeats=set_repeats(pictures),
        samples_per_epoch=sum(shown),
        captions_missing=sum(not p.caption_path.is_file() for p in pictures),
        sizes=dict(sorted(sizes.items())),
        buckets=dict(sorted(buckets.items())),
        bucket_samples=dict(sorted(bucket_samples.items())),
    )


def set_repeats(pictures: list[DatasetPicture]) -> int:
    """The repeats of a set's concept folders (the largest where they differ; 0 for no pictures)."""
    return max((p.repeats for p in pictures), default=0)


def target_shown(pictures: list[DatasetPicture]) -> list[int]:
    """Times each target picture is shown per epoch: its own folder's repeats (P2; a subset in sd-scripts)."""
    return [p.repeats for p in pictures]


def kohya_order(picture: DatasetPicture) -> tuple[str, str]:
    """Sort key for the order sd-scripts lists pictures in: concept folder names, then file names."""
    return picture.path.parent.name, picture.path.name


def reg_repeats(folder_repeats: list[int], target_samples: int) -> list[int]:
    """Times each regularization picture is shown per epoch (P3), chosen as sd-scripts chooses.

    `folder_repeats` holds each picture's folder repeats, in `kohya_order`. A first pass takes the
    pictures in turn with their folder's repeats until the samples reach `target_samples`; further
    passes add one showing to each picture in turn until they do (`DreamBoothDataset.__init__`,
    library/train_util.py lines 2166-2182 at 48d368f). Pictures the first pass does not reach are
    not shown (0). The total is `target_samples`, except that the first pass can pass it by less
    than one folder's repeats, as sd-scripts' does.
    """
    shown = [0] * len(folder_repeats)
    total, first_pass = 0, True
    while folder_repeats and total < target_samples:
        for index, repeats in enumerate(folder_repeats):
            added = repeats if first_pass else 1
            shown[index] += added
            total += added
            if total >= target_samples:
                break
        first_pass = False
    return shown


def micro_batches(target: SetPlan, reg: SetPlan | None, batch_size: int) -> int:
    """Batches of `batch_size` in one epoch: each bucket's samples (both sets) batched apart, rounded up.

    As sd-scripts' `make_buckets`: target and regularization samples share a bucket.
    """
    per_bucket: Counter[str] = Counter(target.bucket_samples)
    if reg is not None:
        per_bucket.update(reg.bucket_samples)
    return sum(math.ceil(samples / batch_size) for samples in per_bucket.values())


def largest_bucket(*sets: SetPlan | None) -> tuple[int, int]:
    """The largest training size (by area) a sample of the given sets trains at."""
    sizes = [parse_size_key(key) for s in sets if s is not None for key in s.bucket_samples]
    return max(sizes, key=lambda wh: (wh[0] * wh[1], wh))
