"""What one epoch holds: samples, buckets, micro-batches and shuffled captions (D4, D5, P2, P3, P7).

Each picture trains at `gafu.plan.dataset.bucket_size` (the plan's rule). An epoch holds every
target picture its folder's repeats times and as many regularization samples, the reg pictures
chosen and repeated as sd-scripts does (`gafu.plan.dataset.reg_repeats`), so the epoch's samples
per bucket, batches and optimizer steps are the plan's. Everything random here is seeded by
(seed, epoch): the same epoch is built the same way in every process and after a resume.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from gafu.captions.text import format_caption, read_caption
from gafu.errors import GafuError
from gafu.layout import DatasetPicture
from gafu.plan.dataset import (
    bucket_size,
    kohya_order,
    micro_batches,
    picture_size,
    reg_repeats,
    resized_size,
    size_key,
)
from gafu.plan.model import Plan, SetPlan
from gafu.project import Project


@dataclass(frozen=True)
class TrainPicture:
    """A prepared picture with what training needs to know about it."""

    picture: DatasetPicture
    size: tuple[int, int]  # (width, height) of the file
    resized: tuple[int, int]  # (width, height) it is scaled to before being trimmed to its bucket
    bucket: tuple[int, int]  # (width, height) it trains at
    tags: tuple[str, ...]  # its caption's first line's tags, in order (the trigger first on target pictures)
    loss_weight: float  # 1.0 on target; the prior-loss weight on regularization (P3)

    @property
    def is_reg(self) -> bool:
        """True for a regularization picture."""
        return self.picture.set == "reg"


@dataclass(frozen=True)
class Sample:
    """One entry of an epoch: a picture and the caption it is shown with this time."""

    picture: TrainPicture
    caption: str


Batch = list[Sample]  # one micro-batch: samples of one bucket


def load_pictures(project: Project, plan: Plan) -> list[TrainPicture]:
    """The plan's pictures with their buckets and captions; a dataset unlike the plan's is an error."""
    pictures = []
    held_out = plan.eval.held_out_pictures  # the style probe's, never trained on
    for set_plan in filter(None, (plan.dataset.target, plan.dataset.reg)):
        found = [p for p in project.pictures(set_plan.name) if relative(p.path, project.root) not in held_out]
        weight = 1.0 if set_plan.name == "target" else plan.dataset.prior_loss_weight
        loaded = [_train_picture(p, plan.dataset.resolution, plan.dataset.bucket_step, weight) for p in found]
        _check_against_plan(set_plan, loaded, project)
        pictures.extend(loaded)
    return pictures


def probe_pictures(project: Project, plan: Plan) -> list[TrainPicture]:
    """The style probe's pictures (`plan.eval`), bucketed as training buckets them."""
    pictures = []
    for which, names in (("target", plan.eval.target), ("reg", plan.eval.reg)):
        for name in names:
            path = project.root / name
            if not path.is_file():
                raise GafuError(
                    f"the style probe's picture {path} is gone",
                    path=path,
                    hint="put it back, or start a new run: `gafu train --restart` plans a new probe",
                )
            picture = DatasetPicture(set=which, path=path, repeats=0)
            pictures.append(_train_picture(picture, plan.dataset.resolution, plan.dataset.bucket_step, 1.0))
    return pictures


def _train_picture(picture: DatasetPicture, resolution: int, step: int, weight: float) -> TrainPicture:
    if not picture.caption_path.is_file():
        raise GafuError(
            f"{picture.path} has no caption file", path=picture.caption_path, hint="run `gafu tag` first"
        )
    size = picture_size(picture.path)
    return TrainPicture(
        picture=picture,
        size=size,
        resized=resized_size(*size, resolution, step),
        bucket=bucket_size(*size, resolution, step),
        tags=tuple(read_caption(picture.caption_path).trained),  # the first line only, as sd-scripts
        loss_weight=weight,
    )


def _check_against_plan(set_plan: SetPlan, pictures: list[TrainPicture], project: Project) -> None:
    buckets = dict(sorted(Counter(size_key(p.bucket) for p in pictures).items()))
    if len(pictures) != set_plan.pictures or buckets != set_plan.buckets:
        folder = project.set_dir(set_plan.name)
        raise GafuError(
            f"the {set_plan.name} set in {folder} changed since the plan was made "
            f"({len(pictures)} pictures in buckets {buckets}, "
            f"the plan has {set_plan.pictures} in {set_plan.buckets})",
            path=folder,
            hint="start a new run with `gafu train --restart` (a resumed run must keep its dataset)",
        )


def samples_per_bucket(plan: Plan, pictures: list[TrainPicture]) -> dict[tuple[int, int], list[TrainPicture]]:
    """The pictures of one epoch per bucket, each repeated as the epoch shows it (P2, P3).

    Target pictures appear their folder's repeats times. Regularization pictures are taken in
    sd-scripts' order and repeated as it repeats them until they match the target samples
    (`gafu.plan.dataset.reg_repeats`), so each bucket holds the plan's `bucket_samples`.
    """
    by_bucket: dict[tuple[int, int], list[TrainPicture]] = defaultdict(list)
    target = [p for p in pictures if not p.is_reg]
    for picture in target:
        by_bucket[picture.bucket].extend([picture] * picture.picture.repeats)
    reg = sorted((p for p in pictures if p.is_reg), key=lambda p: kohya_order(p.picture))
    if plan.dataset.reg is not None and reg:
        target_samples = sum(p.picture.repeats for p in target)
        shown = reg_repeats([p.picture.repeats for p in reg], target_samples)
        for picture, times in zip(reg, shown, strict=True):
            if times:  # pictures the first pass does not reach are not shown
                by_bucket[picture.bucket].extend([picture] * times)
    return dict(sorted(by_bucket.items()))


def epoch_batches(plan: Plan, pictures: list[TrainPicture], epoch: int) -> list[Batch]:
    """The micro-batches of `epoch` (1-based) in training order: buckets batched apart, then shuffled."""
    rng = random.Random(f"{plan.run.seed}:epoch:{epoch}")
    batches: list[Batch] = []
    for members in samples_per_bucket(plan, pictures).values():
        order = list(members)
        rng.shuffle(order)
        for start in range(0, len(order), plan.batch.batch_size):
            chunk = order[start : start + plan.batch.batch_size]
            batches.append([Sample(p, caption_for(p.tags, plan, rng)) for p in chunk])
    rng.shuffle(batches)
    return batches


def caption_for(tags: tuple[str, ...], plan: Plan, rng: random.Random) -> str:
    """The caption shown this time: tags after the first `keep_tokens` shuffled (P7), none dropped."""
    keep = plan.dataset.keep_tokens
    head, tail = list(tags[:keep]), list(tags[keep:])
    if plan.dataset.shuffle_caption:
        rng.shuffle(tail)
    return format_caption(head + tail)


def optimizer_steps(batches: list[Batch], accumulation: int) -> list[list[Batch]]:
    """The epoch's micro-batches grouped into optimizer steps of `accumulation` (the last may be short)."""
    return [batches[i : i + accumulation] for i in range(0, len(batches), accumulation)]


def check_counts(plan: Plan, pictures: list[TrainPicture]) -> None:
    """Raise if the epoch this trainer builds does not have the plan's samples, batches and steps (P2, P3)."""
    per_bucket = samples_per_bucket(plan, pictures)
    batches = sum(math.ceil(len(members) / plan.batch.batch_size) for members in per_bucket.values())
    counted = micro_batches(plan.dataset.target, plan.dataset.reg, plan.batch.batch_size)
    steps = math.ceil(batches / plan.batch.gradient_accumulation)
    planned: Counter[str] = Counter()
    for set_plan in filter(None, (plan.dataset.target, plan.dataset.reg)):
        planned.update(set_plan.bucket_samples)
    built = {size_key(bucket): len(members) for bucket, members in per_bucket.items()}
    if (
        batches != plan.batch.micro_batches_per_epoch
        or counted != batches
        or steps != plan.batch.steps_per_epoch
        or built != dict(planned)
    ):
        raise GafuError(
            f"an epoch has {batches} batches in {steps} steps but the plan says "
            f"{plan.batch.micro_batches_per_epoch} in {plan.batch.steps_per_epoch}",
            hint="run `gafu train --restart` to plan the run again",
        )


def tag_frequency(pictures: list[TrainPicture]) -> dict[str, dict[str, int]]:
    """kohya's `ss_tag_frequency`: concept folder → tag → pictures carrying it."""
    frequency: dict[str, Counter[str]] = defaultdict(Counter)
    for picture in pictures:
        frequency[picture.picture.path.parent.name].update(picture.tags)
    return {folder: dict(counts) for folder, counts in sorted(frequency.items())}


def relative(path: Path, root: Path) -> str:
    """`path` relative to the project root, POSIX style (as progress events name files)."""
    try:
        return Path(path).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return Path(path).as_posix()
