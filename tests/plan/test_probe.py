"""The plan's style probe (`[eval]`): pictures spread over buckets, held out from training on request."""

import dataclasses

import pytest
from PIL import Image

from gafu.config import save_config
from gafu.errors import ConfigError
from gafu.plan import plan_from_dict, resolve_plan
from gafu.project import Project
from gafu.train.data import load_pictures, probe_pictures


def _plan(project):
    return resolve_plan(project, 24.0, describe=lambda settings: None)


def _configured(project: Project, section: str, **values) -> Project:
    config = project.config
    setattr(config, section, dataclasses.replace(getattr(config, section), **values))
    save_config(config, project.config_path)
    return Project.open(project.root)


def _add(project, which, names_and_sizes):
    folder = project.concept_dir(which)
    folder.mkdir(parents=True, exist_ok=True)
    for name, size in names_and_sizes:
        path = folder / name
        Image.new("L", size, 128).save(path)
        first = f"{project.config.project.trigger}, " if which == "target" else ""
        path.with_suffix(".txt").write_text(f"{first}1girl, solo", encoding="utf-8")


def test_the_probe_is_spread_over_buckets_and_the_same_every_time(prepared_project):
    project = prepared_project(n_target=0, n_reg=5, size=(512, 512))
    square = [(f"s{i}.png", (512, 512)) for i in range(6)]
    tall = [(f"t{i}.png", (512, 768)) for i in range(3)]
    _add(project, "target", square + tall)
    project = _configured(project, "train", resolution=512)
    plan = _plan(project)
    folder = project.concept_dir("target").relative_to(project.root).as_posix()
    # Buckets take turns (the fuller first): two each; evenly spaced in name order within a bucket.
    assert plan.eval.target == sorted(f"{folder}/{n}" for n in ("s1.png", "s4.png", "t0.png", "t2.png"))
    assert len(plan.eval.reg) == 4 and not plan.eval.held_out
    assert plan == _plan(project)
    assert plan.dataset.target.pictures == 9  # on training pictures unless held out
    assert plan.sources["eval.target"].startswith("[eval] pictures = 4")


def test_held_out_pictures_are_the_probe_and_never_trained_on(prepared_project):
    project = _configured(prepared_project(n_target=6, n_reg=6, size=(512, 512)), "eval", holdout=2)
    plan = _plan(project)
    assert plan.eval.held_out and len(plan.eval.target) == len(plan.eval.reg) == 2
    assert plan.dataset.target.pictures == plan.dataset.reg.pictures == 4
    assert plan.batch.effective_batch == 2 * 4  # P2: repeats × the pictures that train
    trained = {p.picture.path.relative_to(project.root).as_posix() for p in load_pictures(project, plan)}
    assert len(trained) == 8 and not trained & set(plan.eval.target + plan.eval.reg)
    probe = probe_pictures(project, plan)
    assert sorted(p.picture.path.relative_to(project.root).as_posix() for p in probe) == sorted(
        plan.eval.target + plan.eval.reg
    )
    assert [p.is_reg for p in probe] == [False, False, True, True]
    assert plan.sources["eval.held_out"] == "gafu.toml [eval] holdout"


def test_holding_out_every_picture_is_refused(prepared_project):
    project = _configured(prepared_project(n_target=3, n_reg=6, size=(512, 512)), "eval", holdout=3)
    with pytest.raises(ConfigError, match=r"holdout = 3 leaves none of the 3 target pictures"):
        _plan(project)


@pytest.mark.parametrize(
    ("key", "value"), [("pictures", 0), ("holdout", -1), ("timesteps", 0), ("timesteps", 5000)]
)
def test_bad_eval_values_are_refused(prepared_project, key, value):
    project = _configured(prepared_project(n_target=3, n_reg=3, size=(512, 512)), "eval", **{key: value})
    with pytest.raises(ConfigError, match=rf"\[eval\] {key} = {value}"):
        _plan(project)


def test_a_run_without_the_regularization_set_still_probes_it(prepared_project):
    project = _configured(
        prepared_project(n_target=4, n_reg=4, size=(512, 512)), "train", regularization=False
    )
    plan = _plan(project)
    assert plan.dataset.reg is None and plan.batch.steps_per_epoch == 1  # P3 without regularization
    assert plan.sources["dataset.reg"] == "gafu.toml [train] regularization = false"
    assert any("regularization = false" in w and "(D2)" in w for w in plan.warnings)
    assert len(plan.eval.reg) == 4  # drift is still measured on the same pictures
    assert all(not p.is_reg for p in load_pictures(project, plan))


def test_a_plan_from_before_the_probe_is_migrated(prepared_project):
    data = _plan(prepared_project(n_target=2, n_reg=2, size=(512, 512))).to_dict()
    del data["eval"]
    data["version"] = 1
    plan = plan_from_dict(data)
    assert plan.eval.target == [] and plan.eval.during_training is False
