"""The plan's style probe (`[eval]`): which pictures measure fit, leakage, trigger share and drift.

A few pictures of each set, chosen from the prepared dataset by name and bucket alone, so every
run of a project (with or without regularization) is measured on the same pictures. With
`[eval] holdout = N` the probe is N pictures of each set that training never sees; the plan's
dataset counts leave them out.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Protocol

from gafu.config import Config
from gafu.errors import ConfigError
from gafu.layout import DatasetPicture
from gafu.plan.dataset import bucket_size, picture_size
from gafu.plan.model import EvalPlan
from gafu.project import Project


class Sources(Protocol):
    """The resolver's record of where each plan value came from (`gafu.plan.resolve._Sources`)."""

    def set(self, name: str, value: Any, source: str) -> Any: ...
    def config(self, name: str, section: str, key: str) -> Any: ...


def resolve_eval(project: Project, resolution: int, sources: Sources) -> EvalPlan:
    """The probe of `project` at the training `resolution` (its buckets), from `[eval]`."""
    section, where = project.config.eval, project.config_path
    _check(project.config, str(where))
    holdout = section.holdout
    count = holdout or section.pictures
    chosen = {}
    for which in ("target", "reg"):
        pictures = project.pictures(which)
        if holdout and pictures and holdout >= len(pictures):
            raise ConfigError(
                f"{where}: [eval] holdout = {holdout} leaves none of the {len(pictures)} {which} "
                "pictures to train on",
                hint="hold out fewer pictures (a few of 40 or more is typical)",
            )
        chosen[which] = choose_probe(project, pictures, resolution, count)
        how = f"gafu.toml [eval] holdout = {holdout}" if holdout else f"[eval] pictures = {count}"
        sources.set(f"eval.{which}", None, f"{how}, spread over the buckets")
    return EvalPlan(
        during_training=sources.config("eval.during_training", "eval", "during_training"),
        target=chosen["target"],
        reg=chosen["reg"],
        held_out=bool(sources.config("eval.held_out", "eval", "holdout")),
        timesteps=sources.config("eval.timesteps", "eval", "timesteps"),
        seed=sources.config("eval.seed", "eval", "seed"),
    )


def choose_probe(project: Project, pictures: list[DatasetPicture], resolution: int, count: int) -> list[str]:
    """`count` pictures spread over the buckets, as paths relative to the project (POSIX).

    Buckets take turns, the fullest first, until `count` are taken; within a bucket the picks are
    evenly spaced in name order. The same dataset always gives the same probe.
    """
    by_bucket: dict[tuple[int, int], list[str]] = defaultdict(list)
    for picture in pictures:
        name = picture.path.relative_to(project.root).as_posix()
        by_bucket[bucket_size(*picture_size(picture.path), resolution)].append(name)
    buckets = sorted(by_bucket.values(), key=lambda names: (-len(names), sorted(names)[0]))
    taken = [0] * len(buckets)
    left = min(count, len(pictures))
    while left:
        for index, names in enumerate(buckets):
            if left and taken[index] < len(names):
                taken[index] += 1
                left -= 1
    chosen = []
    for names, picks in zip(buckets, taken, strict=True):
        ordered = sorted(names)
        chosen += [ordered[int((j + 0.5) * len(ordered) / picks)] for j in range(picks)]
    return sorted(chosen)


def _check(config: Config, source: str) -> None:
    section = config.eval
    for key, low in (("pictures", 1), ("holdout", 0), ("timesteps", 1)):
        value = getattr(section, key)
        if value < low:
            raise ConfigError(f"{source}: [eval] {key} = {value} must be at least {low}")
    if section.timesteps > 1000:
        raise ConfigError(f"{source}: [eval] timesteps = {section.timesteps} is more than the schedule has")
