import dataclasses

import pytest
import torch
from diffusers.optimization import get_cosine_with_hard_restarts_schedule_with_warmup

from gafu import recipe
from gafu.errors import GafuError
from gafu.families import FAMILIES, get_family
from gafu.plan import resolve_plan
from gafu.plan.memory import GIB, GpuInfo
from gafu.plan.model import value_names
from gafu.plan.render import source_of
from gafu.project import Project
from tests.conftest import small_network_summary


def _no_summary(settings):
    return None


def _with(project: Project, section: str, **values) -> Project:
    """The same project with `[section]` values replaced (no file written)."""
    config = project.config
    changed = dataclasses.replace(getattr(config, section), **values)
    return dataclasses.replace(project, config=dataclasses.replace(config, **{section: changed}))


def _plan(project, vram=80.0, **kwargs):
    kwargs.setdefault("describe", _no_summary)
    return resolve_plan(project, vram, **kwargs)


# --- worked examples (P2, P3) ---------------------------------------------------------------------


def test_p2_worked_example_100_pictures_2_repeats_gives_effective_batch_200(prepared_project):
    project = prepared_project(n_target=100, n_reg=0, size=(512, 512))
    plan = _plan(project)
    assert plan.dataset.target.pictures == 100 and plan.dataset.target.repeats == recipe.REPEATS == 2
    assert plan.batch.effective_batch == 200
    assert plan.batch.batch_size * plan.batch.gradient_accumulation == 200
    # Without regularization one optimizer step covers a whole epoch.
    assert plan.batch.samples_per_epoch == 200
    assert plan.batch.steps_per_epoch == 1
    assert plan.batch.total_steps == 200


def test_p3_worked_example_40_target_40_reg_is_2_steps_per_epoch_400_steps(prepared_project):
    project = prepared_project(n_target=40, n_reg=40)
    batch_sizes = set()
    for vram in (8.0, 12.0, 16.0, 24.0, 48.0, 80.0):  # whatever batch size the memory allows
        plan = _plan(project, vram)
        batch_sizes.add(plan.batch.batch_size)
        assert plan.batch.effective_batch == 80
        assert plan.batch.samples_per_epoch == 160  # 2 × repeats × N
        assert plan.dataset.reg.samples_per_epoch == plan.dataset.target.samples_per_epoch
        assert plan.batch.steps_per_epoch == recipe.STEPS_PER_EPOCH_WITH_REG == 2
        assert plan.batch.epochs == 200 and plan.batch.total_steps == 400
        assert plan.sources["batch.epochs"] == "recipe P1"
    assert len(batch_sizes) > 2


def test_reg_with_fewer_pictures_than_target_is_matched_to_the_target(prepared_project):
    project = prepared_project(n_target=30, n_reg=10)
    plan = _plan(project)
    assert plan.dataset.reg.pictures == 10
    assert plan.dataset.reg.samples_per_epoch == 60  # repeated until it matches 30 × 2
    assert plan.batch.samples_per_epoch == 120 and plan.batch.steps_per_epoch == 2


# --- scheduler (P5) ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("epochs", "cycles"), [(200, 4), (150, 3), (100, 2), (50, 1)])
def test_cosine_cycles_are_a_cycle_count_and_match_diffusers(prepared_project, epochs, cycles):
    project = _with(prepared_project(n_target=8, n_reg=8, size=(256, 256)), "train", epochs=epochs)
    plan = _plan(project)
    assert plan.optimizer.num_cycles == cycles
    assert plan.optimizer.steps_per_cycle * cycles == plan.batch.total_steps
    # The scheduler kohya and gafu use: num_cycles cosine cycles, so num_cycles − 1 restarts.
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = get_cosine_with_hard_restarts_schedule_with_warmup(
        optimizer, 0, plan.batch.total_steps, num_cycles=plan.optimizer.num_cycles
    )
    lrs = []
    for _ in range(plan.batch.total_steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    restarts = [i for i in range(1, len(lrs)) if lrs[i] > lrs[i - 1]]
    assert len(restarts) == cycles - 1
    assert restarts == [plan.optimizer.steps_per_cycle * k for k in range(1, cycles)]
    period = plan.batch.steps_per_epoch * plan.optimizer.restart_every_epochs
    assert restarts == [period * k for k in range(1, cycles)]


def test_epochs_not_a_multiple_of_the_restart_period_say_so(prepared_project):
    plan = _plan(_with(prepared_project(n_target=4, n_reg=4, size=(256, 256)), "train", epochs=120))
    assert plan.optimizer.num_cycles == 2
    assert any("not a multiple of the 50-epoch restart period" in n for n in plan.notes)


# --- learning rates (P4) -----------------------------------------------------------------------------


def test_text_encoder_lr_is_a_ratio_of_the_unet_lr(prepared_project):
    project = prepared_project(n_target=4, n_reg=4, size=(256, 256))
    plan = _plan(project)
    assert plan.optimizer.unet_lr == recipe.UNET_LR
    assert plan.optimizer.text_encoder_lr == pytest.approx(recipe.UNET_LR * recipe.TEXT_ENCODER_LR_RATIO)
    assert plan.sources["optimizer.unet_lr"] == "recipe P4"
    tenth = _plan(_with(project, "train", text_encoder_lr_ratio=0.1, unet_lr=1e-3))
    assert tenth.optimizer.text_encoder_lr == pytest.approx(1e-4)
    assert tenth.sources["optimizer.unet_lr"] == "gafu.toml [train] unet_lr"
    frozen = _plan(_with(project, "train", train_text_encoder=False))
    assert frozen.optimizer.text_encoder_lr == 0 and not frozen.network.settings.train_text_encoder


# --- families (P9, D4, P10) ---------------------------------------------------------------------------


@pytest.mark.parametrize("family_name", list(FAMILIES))
def test_family_presets(prepared_project, family_name):
    project = prepared_project(n_target=4, n_reg=4, size=(256, 256), family=family_name)
    plan = _plan(project)
    family = get_family(family_name)
    vpred = family_name == "noob-vpred"
    assert plan.loss.v_parameterization is vpred
    assert plan.loss.zero_terminal_snr is vpred
    assert plan.loss.scale_v_pred_loss_like_noise_pred is vpred
    assert plan.sources["loss.v_parameterization"] == f"family {family_name} (P9)"
    assert plan.dataset.resolution == family.training_side
    assert plan.model.prediction_type == family.prediction_type
    assert plan.model.base_model_version == family.base_model_version
    sampler = family.sampler
    assert plan.sample.scheduler == sampler.scheduler
    assert (plan.sample.steps, plan.sample.cfg) == (sampler.steps, sampler.cfg)
    assert (plan.sample.guidance_rescale, plan.sample.timestep_spacing) == (
        sampler.guidance_rescale,
        sampler.timestep_spacing,
    )
    assert plan.sample.width == plan.sample.height == family.training_side


def test_sample_overrides_win_over_the_family_preset(prepared_project):
    project = prepared_project(n_target=4, n_reg=4, size=(256, 256), family="noob-vpred")
    plan = _plan(_with(project, "sample", sampler="dpmpp_2m", steps=20, cfg=3.5, prompts=["1girl, smile"]))
    assert (plan.sample.scheduler, plan.sample.steps, plan.sample.cfg) == ("dpmpp_2m", 20, 3.5)
    assert plan.sources["sample.steps"] == "gafu.toml [sample] steps"
    assert plan.sample.guidance_rescale == get_family("noob-vpred").sampler.guidance_rescale
    assert plan.sample.prompts == ["1girl, smile"] and plan.sample.weights == list(recipe.SAMPLE_WEIGHTS)


# --- batch size and memory (P2) ------------------------------------------------------------------------


def test_batch_size_grows_with_vram_and_always_fits_or_warns(prepared_project):
    project = prepared_project(n_target=40, n_reg=40)
    sizes = []
    for vram in (6.0, 12.0, 24.0, 48.0):
        plan = _plan(project, vram)
        sizes.append(plan.batch.batch_size)
        assert plan.sources["batch.batch_size"] == "memory model (estimate)"
        assert plan.memory.vram_gb == vram and plan.sources["memory.vram_gb"] == "--vram"
        assert plan.memory.estimate_gb == pytest.approx(sum(plan.memory.breakdown.values()), abs=0.05)
        if plan.memory.fits:
            assert plan.memory.estimate_gb <= plan.memory.usable_gb
        else:
            assert any("needs about" in w for w in plan.warnings)
    assert sizes == sorted(sizes) and sizes[0] == 1 and sizes[-1] > 1
    assert not _plan(project, 6.0).memory.fits
    assert any("even batch 1 is over the memory estimate" in n for n in _plan(project, 6.0).notes)


def test_vram_sources_in_order_of_precedence(prepared_project):
    project = prepared_project(n_target=4, n_reg=4, size=(256, 256))
    gpu = GpuInfo("NVIDIA GeForce RTX 3060", 11.7, bf16=True)
    assert _plan(project, None, gpu=gpu).memory.vram_gb == 11.7
    assert _plan(project, None, gpu=gpu).sources["memory.vram_gb"] == "detected: NVIDIA GeForce RTX 3060"
    assert _plan(_with(project, "train", vram_gb=16.0), None, gpu=gpu).memory.vram_gb == 16.0
    assert _plan(_with(project, "train", vram_gb=16.0), 24.0, gpu=gpu).memory.vram_gb == 24.0
    nothing = _plan(project, None)
    assert nothing.memory.vram_gb == 12.0 and any("no GPU detected" in n for n in nothing.notes)
    old_gpu = GpuInfo("NVIDIA GeForce RTX 2080 Ti", 11.0, bf16=False)
    assert _plan(project, None, gpu=old_gpu).run.mixed_precision == "fp16"
    with pytest.raises(GafuError, match="--vram"):
        _plan(project, 0.0)


def test_batch_overrides(prepared_project):
    project = prepared_project(n_target=50, n_reg=50, size=(512, 512))  # effective batch 100
    given = _plan(_with(project, "train", batch_size=5), 80.0)
    assert (given.batch.batch_size, given.batch.gradient_accumulation) == (5, 20)
    assert given.sources["batch.batch_size"] == "gafu.toml [train] batch_size"
    assert (
        given.sources["batch.gradient_accumulation"] == "recipe P2/P3: the epoch's batches / steps per epoch"
    )
    accumulate = _plan(_with(project, "train", gradient_accumulation=25), 80.0)
    assert (accumulate.batch.batch_size, accumulate.batch.gradient_accumulation) == (4, 25)
    assert accumulate.batch.steps_per_epoch == 2
    too_big = _plan(_with(project, "train", batch_size=64), 8.0)
    assert any("above the" in w for w in too_big.warnings)
    off = _plan(_with(project, "train", batch_size=3, gradient_accumulation=10), 80.0)
    assert any("far from the effective batch 100" in w for w in off.warnings)
    assert off.batch.steps_per_epoch == 7 and any("not the recipe's 2 (P3)" in w for w in off.warnings)


def test_buckets_and_largest_training_size(prepared_project):
    project = prepared_project(n_target=6, n_reg=0, size=(1024, 1024), family="sdxl")
    folder = project.concept_dir("target")
    from PIL import Image

    Image.new("L", (1536, 1024), 0).save(folder / "wide.png")  # area above 1024²: scaled down
    plan = _plan(project)
    assert plan.dataset.target.sizes == {"1024x1024": 6, "1536x1024": 1}
    assert plan.dataset.target.buckets == {"1024x1024": 6, "1216x832": 1}
    assert plan.dataset.largest_bucket == "1024x1024"
    assert plan.dataset.target.captions_missing == 1
    assert any("1 target pictures have no caption" in w for w in plan.warnings)
    assert any("scaled down" in n for n in plan.notes)


# --- the dataset as found --------------------------------------------------------------------------------


def test_unprepared_project_is_an_error(make_project):
    project = make_project(n_target=2, n_reg=2)
    with pytest.raises(GafuError, match=r"no prepared pictures .* run `gafu prep` first"):
        _plan(project)


def test_configured_reg_without_prepared_reg_is_an_error(prepared_project):
    project = prepared_project(n_target=4, n_reg=0, size=(256, 256))
    project = _with(project, "sources", reg="somewhere")
    with pytest.raises(GafuError, match=r"regularization folder .* no prepared pictures"):
        _plan(project)


def test_dataset_remarks(prepared_project):
    project = prepared_project(n_target=4, n_reg=4, size=(256, 256))
    unconfigured = _plan(_with(project, "sources", reg=""))
    assert unconfigured.dataset.reg is not None
    assert any("names no regularization folder" in w for w in unconfigured.warnings)
    mismatch = _plan(_with(project, "project", repeats=3))
    assert mismatch.dataset.target.repeats == 2
    assert any("repeats = 3" in w for w in mismatch.warnings)
    without_reg = _plan(prepared_project_without_reg := _with(project, "sources", reg=""), 80.0)
    assert without_reg.batch.samples_per_epoch == 16 and prepared_project_without_reg.config.sources.reg == ""


def test_unreadable_prepared_picture_is_a_one_line_error(prepared_project):
    project = prepared_project(n_target=3, n_reg=0, size=(256, 256))
    bad = project.concept_dir("target") / "broken.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(GafuError, match=r"broken\.png is not a readable picture"):
        _plan(project)


# --- the network summary and sources ------------------------------------------------------------------------


def test_injected_network_summary_is_carried_and_sizes_the_memory(prepared_project):
    project = prepared_project(n_target=4, n_reg=4, size=(256, 256))
    summary = small_network_summary()
    seen = []
    plan = _plan(project, describe=lambda settings: seen.append(settings) or summary)
    assert seen == [plan.network.settings]
    assert plan.network.summary == summary
    assert plan.sources["network.summary"] == "gafu network builder (meta device)"
    state = summary.trainable_parameters * 16 / GIB
    assert plan.memory.breakdown["LoKr weights, gradients, optimizer state"] == round(state, 2)
    assert any("3 of 4 modules" in n for n in plan.notes)
    without = _plan(project)
    assert without.network.summary is None and any("no network summary" in n for n in without.notes)


def test_default_summary_is_the_real_sdxl_network_and_follows_the_factor(prepared_project):
    project = prepared_project(n_target=4, n_reg=4, size=(256, 256))
    factor8 = resolve_plan(project, 12.0)  # no describe: gafu's builder on SDXL's architecture
    factor4 = resolve_plan(_with(project, "network", factor=4), 12.0)
    assert len(factor8.network.summary.modules) == len(factor4.network.summary.modules) > 1000
    # A smaller factor keeps larger Kronecker blocks: more parameters and a larger file (P6).
    assert factor4.network.summary.file_bytes("fp16") > 2 * factor8.network.summary.file_bytes("fp16")
    assert factor4.memory.breakdown != factor8.memory.breakdown


def test_default_summary_uses_the_projects_model_config(prepared_project, tiny_model):
    project = prepared_project(n_target=4, n_reg=4, size=(256, 256))
    tiny = _with(project, "model", config=str(tiny_model.config_dir))
    modules = resolve_plan(tiny, 12.0).network.summary.modules
    sdxl = resolve_plan(project, 12.0).network.summary.modules
    assert 0 < len(modules) < len(sdxl)
    assert sum(m.parameters for m in modules) * 100 < sum(m.parameters for m in sdxl)
    # The memory estimate is the tiny architecture's, not SDXL's.
    tiny_plan, sdxl_plan = resolve_plan(tiny, 12.0), resolve_plan(project, 12.0)
    assert tiny_plan.memory.estimate_gb < sdxl_plan.memory.estimate_gb / 2
    assert any("scaled to it" in note for note in tiny_plan.notes)
    assert not any("scaled to it" in note for note in sdxl_plan.notes)


def test_alpha_defaults_to_dim_and_overrides_are_sourced(prepared_project):
    project = prepared_project(n_target=4, n_reg=4, size=(256, 256))
    plan = _plan(project)
    assert plan.network.settings.alpha == recipe.LINEAR_DIM
    assert plan.network.settings.conv_alpha == recipe.CONV_DIM
    assert plan.sources["network.settings.alpha"].startswith("gafu default: = dim")
    factor4 = _plan(_with(project, "network", factor=4, alpha=64.0))
    assert factor4.network.settings.factor == 4 and factor4.network.settings.alpha == 64.0
    assert factor4.sources["network.settings.factor"] == "gafu.toml [network] factor"
    assert any("alpha/dim = 0.5" in n for n in factor4.notes)


def test_every_value_has_a_source(prepared_project):
    project = prepared_project(n_target=4, n_reg=4, size=(256, 256), family="noob-vpred")
    plan = _plan(project, describe=lambda s: small_network_summary())
    names = value_names(plan.to_dict())
    skip = {"version", "gafu_version", "sources", "notes", "warnings"} | set(
        ("model", "dataset", "network", "batch", "optimizer", "loss", "run", "memory", "sample", "eval")
    )
    missing = [name for name in names if name not in skip and not source_of(name, plan.sources)]
    assert missing == []
    assert set(plan.sources) <= set(names)


def test_plan_is_a_pure_function_of_its_inputs(prepared_project):
    project = prepared_project(n_target=6, n_reg=6, size=(256, 256))
    assert _plan(project, 16.0) == _plan(project, 16.0)
