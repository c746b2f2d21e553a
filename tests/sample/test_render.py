"""Rendering on the tiny model: grids, weight 0 = the base model, fixed seeds, no state left behind."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
import torch
from PIL import Image

from gafu.sample.grid import read_grid
from gafu.sample.prompts import SamplePrompt
from gafu.sample.render import SampleRenderer, network_at
from gafu.sample.schedulers import NoiseSchedule
from gafu.sample.sheet import Row, render_sheet, weight_rows

TRIGGER = "mzh_style"
EPS = NoiseSchedule(v_prediction=False, zero_terminal_snr=False, timestep_spacing="leading")


def prompt(text: str = "1girl, white dress", seed: int = 7, scheduler: str = "euler_a") -> SamplePrompt:
    return SamplePrompt(
        text=text, negative="lowres", width=64, height=64, steps=3, cfg=5.0, seed=seed, scheduler=scheduler
    )


def pixels(image_or_path) -> np.ndarray:
    if isinstance(image_or_path, Image.Image):
        return np.asarray(image_or_path.convert("RGB"))
    with Image.open(image_or_path) as image:
        return np.asarray(image.convert("RGB"))


@pytest.fixture(scope="module")
def base(tiny_model):
    """A private copy of the tiny model: these tests attach networks to it."""
    from gafu.models.load import load_base_model

    return load_base_model(tiny_model.diffusers_dir, dtype=torch.float32)


@pytest.fixture(scope="module")
def renderer(base):
    return SampleRenderer(base, EPS, sampler="euler_a")


@pytest.fixture
def network(base, tiny_lokr_files):
    from gafu.network.files import load_network

    network = load_network(tiny_lokr_files[0], base.unet, base.text_encoders)
    yield network
    network.restore()


def test_grid_of_three_weights_and_two_prompts(renderer, network, tmp_path):
    prompts = [prompt("1girl, white dress"), prompt("black hair, smile")]
    sheet = render_sheet(
        renderer, weight_rows([0, 0.5, 1]), prompts, tmp_path, trigger=TRIGGER, network=network
    )
    assert [p.name for p in sheet.grids] == ["grid-p01.png", "grid-p02.png"]
    assert sheet.rendered == 3 * 2 * 2
    for index, grid in enumerate(sheet.grids, start=1):
        info = read_grid(grid)
        assert info["row_labels"] == ["weight 0", "weight 0.5", "weight 1"]
        assert info["column_labels"] == ["with trigger", "without trigger"]
        assert info["title"] == prompts[index - 1].text
        assert "seed 7" in info["subtitle"] and "euler_a" in info["subtitle"]
        cell_w, cell_h = info["cell"]
        assert (cell_w, cell_h) == (64, 64)
        with Image.open(grid) as image:
            canvas = np.asarray(image.convert("RGB"))
        label_w, header_h = canvas.shape[1] - 2 * cell_w, canvas.shape[0] - 3 * cell_h
        assert label_w > 0 and header_h > 0  # room for the labels
        for r, row in enumerate(info["cells"]):
            for c, name in enumerate(row):
                assert name == f"p{index:02d}-{['w0', 'w0.5', 'w1'][r]}-{['trigger', 'plain'][c]}.png"
                x, y = label_w + c * cell_w, header_h + r * cell_h
                np.testing.assert_array_equal(canvas[y : y + cell_h, x : x + cell_w], pixels(tmp_path / name))
    assert not network.applied and network.multiplier == 1.0  # as it was before the sheet


def test_weight_0_is_the_base_model_and_the_lokr_changes_the_picture(renderer, network, tmp_path):
    base_picture = pixels(renderer.render(prompt(), f"{TRIGGER}, 1girl, white dress"))
    render_sheet(renderer, weight_rows([0, 1]), [prompt()], tmp_path, trigger=TRIGGER, network=network)
    np.testing.assert_array_equal(pixels(tmp_path / "p01-w0-trigger.png"), base_picture)
    assert not np.array_equal(pixels(tmp_path / "p01-w1-trigger.png"), base_picture)


def test_same_seed_same_pixels_other_seed_other_pixels(base, renderer):
    first = pixels(renderer.render(prompt(seed=3), "1girl"))
    again = pixels(SampleRenderer(base, EPS, sampler="euler_a").render(prompt(seed=3), "1girl"))
    other = pixels(renderer.render(prompt(seed=4), "1girl"))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_a_batch_draws_what_single_renders_draw(renderer):
    prompts = [prompt(seed=3), prompt("black hair, smile", seed=4)]
    texts = ["1girl", "black hair, smile"]
    batch = [pixels(image) for image in renderer.render_batch(prompts, texts)]
    single = [pixels(renderer.render(p, text)) for p, text in zip(prompts, texts, strict=True)]
    for drawn, alone in zip(batch, single, strict=True):  # each from its own seed's noise
        assert np.abs(drawn.astype(int) - alone.astype(int)).max() <= 2
    assert not np.array_equal(batch[0], batch[1])


def test_v_prediction_zero_snr_renders(base):
    vpred = NoiseSchedule(v_prediction=True, zero_terminal_snr=True, timestep_spacing="trailing")
    picture = pixels(
        SampleRenderer(base, vpred, sampler="euler", guidance_rescale=0.7).render(prompt(), "1girl")
    )
    assert picture.shape == (64, 64, 3) and picture.std() > 0


def test_pictures_on_disk_with_the_same_settings_are_kept(renderer, network, tmp_path):
    rows, prompts = weight_rows([0, 1]), [prompt()]
    first = render_sheet(renderer, rows, prompts, tmp_path, trigger=TRIGGER, network=network, identity="m")
    again = render_sheet(renderer, rows, prompts, tmp_path, trigger=TRIGGER, network=network, identity="m")
    other = render_sheet(
        renderer, rows, [prompt(seed=8)], tmp_path, trigger=TRIGGER, network=network, identity="m"
    )
    assert (first.rendered, again.rendered, again.reused, other.rendered) == (4, 0, 4, 4)


# --- no state left behind ----------------------------------------------------------------------------
def model_state(base) -> dict:
    """Everything a left-over network could change: modules, hooks, attributes, parameters."""
    parts = {"unet": base.unet, "te1": base.text_encoder, "te2": base.text_encoder_2, "vae": base.vae}
    state = {}
    for part_name, part in parts.items():
        for name, module in part.named_modules():
            key = f"{part_name}.{name}"
            state[key] = (
                type(module),
                sorted(module.__dict__),
                len(module._forward_hooks) + len(module._forward_pre_hooks) + len(module._backward_hooks),
                sorted(module._modules),
            )
        for name, parameter in part.named_parameters():
            state[f"{part_name}.{name}#param"] = (
                parameter.data_ptr(),
                float(parameter.detach().double().sum()),
            )
    return state


def test_many_weight_and_file_switches_leave_the_model_as_it_was(base, renderer, tiny_lokr_files, tmp_path):
    from gafu.network.files import load_network

    before = model_state(base)
    modules_before = sum(
        1 for part in (base.unet, base.text_encoder, base.text_encoder_2) for _ in part.modules()
    )
    alive = []
    for round_ in range(6):
        network = load_network(tiny_lokr_files[round_ % 2], base.unet, base.text_encoders)
        alive.append(weakref.ref(network))
        for weight in (0.0, 0.5, 1.0, 1.5, 0.0, -0.5):
            with network_at(network, weight):
                assert network.applied == (weight != 0)
                if round_ == 0 and weight == 1.5:
                    renderer.render(prompt(), "1girl")  # and a real render in between
        del network
    # epochs mode: a file loaded per row by the sheet itself
    rows = [Row(f"epoch {i}", f"e{i}", 1.0, lokr=path) for i, path in enumerate(tiny_lokr_files, start=1)]
    loaded = []

    def load(path):
        network = load_network(path, base.unet, base.text_encoders)
        loaded.append(weakref.ref(network))
        return network

    render_sheet(renderer, rows, [prompt()], tmp_path, trigger=TRIGGER, load=load)
    gc.collect()
    assert before == model_state(base)
    assert modules_before == sum(
        1 for part in (base.unet, base.text_encoder, base.text_encoder_2) for _ in part.modules()
    )
    assert len(loaded) == 2 and all(
        ref() is None for ref in alive + loaded
    )  # no network (or weight copy) kept
