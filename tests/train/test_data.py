"""Epochs as the plan counts them (P2, P3), buckets, reg mixing and caption shuffling (P7).

Where sd-scripts (kohya-ss/sd-scripts at 48d368f) decides a count, the expected value is its rule,
written out with the file and lines it comes from.
"""

import math
from collections import Counter

import pytest

from gafu.errors import GafuError
from gafu.plan import resolve_plan
from gafu.plan.dataset import micro_batches
from gafu.project import Project
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
    # 10 target samples (4 × 2 + wide × 2). sd-scripts (train_util.py lines 2166-2182) takes the
    # reg pictures in name order with their folder's repeats (2 each: 6), then adds one each in
    # turn until 10: r000 → 3, r001 → 3, r002 → 3, r000 → 4.
    plan, pictures, batches = _epoch(project)
    assert set(plan.dataset.target.buckets) == {"64x64", "128x64"}
    assert set(plan.dataset.reg.buckets) == {"64x64", "64x128"}
    check_counts(plan, pictures)
    assert len(batches) == plan.batch.micro_batches_per_epoch
    assert len(batches) == micro_batches(plan.dataset.target, plan.dataset.reg, plan.batch.batch_size)
    per_bucket = {b: len(m) for b, m in samples_per_bucket(plan, pictures).items()}
    reg = Counter(s.picture.picture.path.name for b in batches for s in b if s.picture.is_reg)
    assert reg == {"r000.png": 4, "r001.png": 3, "r002.png": 3}  # exactly the 10 target samples
    assert plan.dataset.reg.bucket_samples == {"64x128": 4, "64x64": 6}
    assert sum(per_bucket.values()) == sum(len(b) for b in batches) == 20


def _concept(project: Project, which: str, folder: str, names: list[str], tags: list[str], seed: int) -> None:
    for i, name in enumerate(names):
        path = write_picture(project.set_dir(which) / folder / f"{name}.png", (64, 64), seed=seed + i)
        path.with_suffix(".txt").write_text(", ".join(tags), encoding="utf-8")


def test_concept_folders_with_different_repeats_count_per_folder(train_project):
    """D5: each `<repeats>_<name>` folder is a subset with its own repeats, as in sd-scripts."""
    project = train_project(4, 4, batch_size=2)  # 2_mzh_style: t000-t003, 2_reg: r000-r003
    _concept(project, "target", "5_mzh_style extra", ["x0", "x1"], ["mzh_style", "1girl"], seed=40)
    _concept(project, "reg", "1_other", ["a0", "a1", "a2"], ["1girl"], seed=50)
    plan, pictures, batches = _epoch(project)
    check_counts(plan, pictures)  # the plan and the trainer agree: training starts
    assert not any("gafu.toml says repeats" in w for w in plan.warnings)  # 2_mzh_style is gafu's own
    # num_train_images = Σ num_repeats × pictures per subset (train_util.py lines 2135-2138)
    assert plan.batch.effective_batch == 4 * 2 + 2 * 5 == 18
    target = Counter(s.picture.picture.path.name for b in batches for s in b if not s.picture.is_reg)
    assert target == {**{f"t{i:03d}.png": 2 for i in range(4)}, "x0.png": 5, "x1.png": 5}
    # Reg subsets in name order ("1_other" before "2_reg"), first pass with each folder's
    # repeats: a0-a2 once (3), r000-r003 twice (11); then one more each in turn up to 18.
    reg = Counter(s.picture.picture.path.name for b in batches for s in b if s.picture.is_reg)
    assert reg == {
        "a0.png": 2,
        "a1.png": 2,
        "a2.png": 2,
        "r000.png": 3,
        "r001.png": 3,
        "r002.png": 3,
        "r003.png": 3,
    }
    assert sum(reg.values()) == 18 and plan.dataset.reg.samples_per_epoch == 18
    assert len(batches) == plan.batch.micro_batches_per_epoch == 18  # 36 samples in one bucket, by 2


def test_more_reg_pictures_than_needed_uses_the_first_by_name(train_project):
    project = train_project(2, 6)  # 4 target samples; 6 reg pictures at 2 repeats
    plan, _, batches = _epoch(project)
    reg = Counter(s.picture.picture.path.name for b in batches for s in b if s.picture.is_reg)
    assert reg == {"r000.png": 2, "r001.png": 2}  # the first pass reaches 4 after two pictures
    assert any("4 of the 6 regularization pictures are not shown" in n for n in plan.notes)


def test_only_the_first_line_of_a_caption_is_trained(train_project):
    """P7: sd-scripts reads `lines[0].strip()` of a caption file (train_util.py line 1968)."""
    project = train_project(2, 0)
    caption = project.concept_dir("target") / "t000.txt"
    caption.write_text("mzh_style, 1girl, smile\nsecond line tag, sky\n", encoding="utf-8")
    _, pictures, batches = _epoch(project)
    picture = next(p for p in pictures if p.picture.caption_path == caption)
    assert picture.tags == ("mzh_style", "1girl", "smile")
    assert all("second line tag" not in s.caption for b in batches for s in b)


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
