"""Epochs as the plan counts them (P2, P3), buckets, reg mixing and caption shuffling (P7)."""

import math
from collections import Counter

import pytest

from gafu.errors import GafuError
from gafu.plan import resolve_plan
from gafu.plan.dataset import micro_batches
from gafu.train.data import (
    check_counts,
    epoch_batches,
    load_pictures,
    optimizer_steps,
    samples_per_bucket,
    tag_frequency,
)
from tests.conftest import write_captioned_set, write_picture


def _epoch(project, epoch=1):
    plan = resolve_plan(project)
    pictures = load_pictures(project, plan)
    return plan, pictures, epoch_batches(plan, pictures, epoch)


@pytest.mark.parametrize(
    ("n_target", "n_reg", "batch_size"), [(4, 4, 2), (4, 0, 3), (5, 3, 2), (3, 6, 4), (4, 4, 0)]
)
def test_an_epoch_has_the_plans_samples_batches_and_steps(train_project, n_target, n_reg, batch_size):
    project = train_project(n_target, n_reg, batch_size=batch_size)
    plan, pictures, batches = _epoch(project)
    check_counts(plan, pictures)
    target = [s for b in batches for s in b if not s.picture.is_reg]
    reg = [s for b in batches for s in b if s.picture.is_reg]
    assert len(target) == plan.batch.effective_batch == 2 * n_target  # P2: repeats × N
    assert len(reg) == (len(target) if n_reg else 0)  # P3: as many reg samples as target samples
    assert len(target) + len(reg) == plan.batch.samples_per_epoch
    assert len(batches) == plan.batch.micro_batches_per_epoch
    assert len(optimizer_steps(batches, plan.batch.gradient_accumulation)) == plan.batch.steps_per_epoch
    assert plan.batch.total_steps == plan.batch.steps_per_epoch * plan.batch.epochs
    assert all(len(b) <= plan.batch.batch_size for b in batches)
    assert all(len({s.picture.bucket for s in b}) == 1 for b in batches)  # buckets are batched apart


def test_mixed_buckets_count_as_the_plan_counts(train_project):
    project = train_project(4, 0, batch_size=2)
    write_picture(project.concept_dir("target") / "wide.png", (128, 64), seed=5)
    (project.concept_dir("target") / "wide.txt").write_text("mzh_style, 1girl, wide", encoding="utf-8")
    write_captioned_set(project, "reg", [["1girl"], ["solo"], ["smile"]], size=(64, 64), seed=7)
    write_captioned_set(project, "reg", [["sky"]], size=(64, 128), seed=8)  # r000 replaced at 64x128
    # 10 reg samples over buckets of 2 and 1 pictures: 6.67 and 3.33, each rounded up
    plan, pictures, batches = _epoch(project)
    assert set(plan.dataset.target.buckets) == {"64x64", "128x64"}
    assert set(plan.dataset.reg.buckets) == {"64x64", "64x128"}
    check_counts(plan, pictures)
    assert len(batches) == plan.batch.micro_batches_per_epoch
    assert len(batches) == micro_batches(plan.dataset.target, plan.dataset.reg, plan.batch.batch_size)
    per_bucket = {b: len(m) for b, m in samples_per_bucket(plan, pictures).items()}
    reg_samples = sum(1 for b in batches for s in b if s.picture.is_reg)
    assert reg_samples == 7 + 4  # shares rounded up per bucket, as micro_batches counts them
    assert sum(per_bucket.values()) == sum(len(b) for b in batches)


def test_captions_keep_the_trigger_first_and_every_tag(train_project):
    project = train_project(4, 4)
    plan, pictures, _ = _epoch(project)
    trigger = plan.trigger
    orders = Counter()
    for epoch in range(1, 6):
        for batch in epoch_batches(plan, pictures, epoch):
            for sample in batch:
                tags = sample.caption.split(", ")
                assert sorted(tags) == sorted(sample.picture.tags)  # nothing dropped (P7)
                if not sample.picture.is_reg:
                    assert tags[0] == trigger  # keep_tokens = 1 (P7)
                orders[(sample.picture.picture.path, sample.caption)] += 1
    assert len(orders) > len(pictures)  # shuffled: the same picture is shown with several orders


def test_the_same_epoch_is_built_the_same_way_and_epochs_differ(train_project):
    project = train_project(4, 4)
    plan, pictures, first = _epoch(project, 3)
    again = epoch_batches(plan, pictures, 3)
    other = epoch_batches(plan, pictures, 4)
    assert first == again
    assert first != other


def test_reg_samples_carry_the_prior_loss_weight_and_cycle(train_project):
    project = train_project(6, 2)
    plan, _, batches = _epoch(project)
    reg = Counter(s.picture.picture.path.name for b in batches for s in b if s.picture.is_reg)
    assert sum(reg.values()) == 12 and set(reg.values()) == {6}  # 2 pictures cycled to 12 samples
    assert {s.picture.loss_weight for b in batches for s in b} == {plan.dataset.prior_loss_weight}


def test_a_dataset_changed_since_the_plan_is_an_error(train_project):
    project = train_project(4, 4)
    plan = resolve_plan(project)
    write_picture(project.concept_dir("target") / "new.png", (64, 64), seed=9)
    (project.concept_dir("target") / "new.txt").write_text("mzh_style, 1girl", encoding="utf-8")
    with pytest.raises(GafuError, match="changed since the plan"):
        load_pictures(project, plan)


def test_a_picture_without_caption_is_an_error(train_project):
    project = train_project(4, 0)
    next(project.concept_dir("target").glob("*.txt")).unlink()
    plan = resolve_plan(project)
    with pytest.raises(GafuError, match="no caption file"):
        load_pictures(project, plan)


def test_tag_frequency_counts_tags_per_concept_folder(train_project):
    project = train_project(4, 4)
    _, pictures, _ = _epoch(project)
    frequency = tag_frequency(pictures)
    assert set(frequency) == {project.concept_dir("target").name, project.concept_dir("reg").name}
    assert frequency[project.concept_dir("target").name]["mzh_style"] == 4
    assert math.isclose(sum(frequency[project.concept_dir("reg").name].values()), 4 * 4)
