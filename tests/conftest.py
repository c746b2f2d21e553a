"""Shared test fixtures: built once per session where they are costly. Tests never touch the network."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

# Before anything imports huggingface_hub: offline, and a cache of the tests' own.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="gafu-test-hf-home-")
os.environ.pop("HF_HUB_CACHE", None)

import numpy as np
import pytest
from PIL import Image

from gafu.init import init_project
from gafu.project import Project


# --- pictures ------------------------------------------------------------------------------
def write_picture(
    path: Path,
    size: tuple[int, int] = (96, 64),
    *,
    seed: int = 0,
    mode: str = "RGB",
    fmt: str | None = None,
) -> Path:
    """Write a picture with random blocks (so perceptual hashes differ by seed)."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    image = Image.fromarray(blocks, "RGB").resize(size, Image.Resampling.NEAREST)
    if mode != "RGB":
        image = image.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format=fmt)
    return path


@pytest.fixture
def picture_writer() -> Callable[..., Path]:
    """The `write_picture` helper, as a fixture."""
    return write_picture


@pytest.fixture
def make_project(tmp_path: Path) -> Callable[..., Project]:
    """Factory: a project with `n_target` and `n_reg` small pictures in folders of originals."""

    def make(n_target: int = 4, n_reg: int = 4, trigger: str = "mzh_style", **init_kwargs) -> Project:
        target = tmp_path / "originals" / "target"
        reg = tmp_path / "originals" / "reg"
        for i in range(n_target):
            write_picture(target / f"t{i:03d}.png", seed=1000 + i)
        for i in range(n_reg):
            write_picture(reg / f"r{i:03d}.png", seed=2000 + i)
        target.mkdir(parents=True, exist_ok=True)
        init_project(
            tmp_path / "project",
            target=target,
            reg=reg if n_reg else None,
            trigger=trigger,
            **init_kwargs,
        )
        return Project.open(tmp_path / "project")

    return make


# --- failing writes (disk full, read-only folders) ----------------------------------------------
class WriteFailure:
    """Makes every gafu write under `folder` fail with an OSError, after `after` successful ones.

    All gafu outputs go through `gafu.fsio.atomic_path`, which creates its temporary file with
    `tempfile.mkstemp`; failing there is what a full disk or a read-only folder (where chmod cannot
    be used, e.g. when tests run as root) looks like to gafu.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self._monkeypatch = monkeypatch

    def under(self, folder: Path, code: int, *, after: int = 0) -> None:
        import tempfile as tempfile_module

        real = tempfile_module.mkstemp
        folder = Path(folder).resolve()
        state = {"left": after}

        def mkstemp(*args, **kwargs):
            target = Path(kwargs.get("dir") or (args[2] if len(args) > 2 else ".")).resolve()
            if target == folder or folder in target.parents:
                if state["left"] <= 0:
                    raise OSError(code, os.strerror(code))
                state["left"] -= 1
            return real(*args, **kwargs)

        self._monkeypatch.setattr(tempfile_module, "mkstemp", mkstemp)


@pytest.fixture
def write_failure(monkeypatch: pytest.MonkeyPatch) -> WriteFailure:
    """`write_failure.under(folder, errno.ENOSPC, after=2)`: writes there fail (see WriteFailure)."""
    return WriteFailure(monkeypatch)


# --- models and the LoKr network (issue 6) -------------------------------------------------------
# The tiny SDXL-architecture model is built once per session; torch and diffusers are imported
# inside the fixtures so tests that do not need them do not pay for the import.
# Tiny models run best on one thread: with torch's default (a thread per core) their small ops
# slow down a hundredfold as soon as the 2 cores are busy with anything else.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """The tiny SDXL model saved as a diffusers folder, a single SGM file and a config folder."""
    from gafu.models.tiny import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny-sdxl"))


@pytest.fixture(scope="session")
def tiny_base(tiny_model):
    """The tiny model loaded in fp32 (shared: tests must not change it; see `tiny_parts`)."""
    import torch

    from gafu.models.load import load_base_model

    return load_base_model(tiny_model.diffusers_dir, dtype=torch.float32)


@pytest.fixture
def tiny_parts(tiny_base):
    """Fresh copies of the tiny model's U-Net and text encoders, for tests that attach or merge."""
    import copy

    return (
        copy.deepcopy(tiny_base.unet),
        copy.deepcopy(tiny_base.text_encoder),
        copy.deepcopy(tiny_base.text_encoder_2),
    )


def diffusers_modules_for(names: list[str], unet, text_encoder, text_encoder_2) -> dict:
    """kohya/LyCORIS module names → the layers diffusers' own kohya-LoRA converter maps them to.

    Independent of gafu's naming: the names are dressed as a kohya LoRA (`lora_down`/`lora_up`)
    and run through the conversion `StableDiffusionXLPipeline.load_lora_weights` uses.
    """
    import torch
    from diffusers.loaders.lora_conversion_utils import (
        _convert_non_diffusers_lora_to_diffusers,
        _maybe_map_sgm_blocks_to_diffusers,
    )
    from diffusers.utils.state_dict_utils import (
        convert_state_dict_to_diffusers,
        convert_state_dict_to_peft,
        convert_unet_state_dict_to_peft,
    )

    lora = {}
    for index, name in enumerate(names):  # the down weight carries the name's index through
        lora[f"{name}.lora_down.weight"] = torch.tensor([float(index)])
        lora[f"{name}.lora_up.weight"] = torch.zeros(1)
        lora[f"{name}.alpha"] = torch.tensor(1.0)
    converted, _ = _convert_non_diffusers_lora_to_diffusers(
        _maybe_map_sgm_blocks_to_diffusers(lora, unet.config)
    )
    found = {}
    parts = (("unet.", unet), ("text_encoder.", text_encoder), ("text_encoder_2.", text_encoder_2))
    for prefix, model in parts:
        own = {k.removeprefix(prefix): v for k, v in converted.items() if k.startswith(prefix)}
        if prefix == "unet.":
            peft = convert_unet_state_dict_to_peft(own)
        else:
            peft = convert_state_dict_to_peft(convert_state_dict_to_diffusers(own))
        for key, value in peft.items():
            if key.endswith(".lora_A.weight"):
                path = key.removesuffix(".lora_A.weight")
                if prefix != "unet." and not hasattr(model, "text_model"):
                    path = path.removeprefix("text_model.")  # transformers ≥ 5.6 flattened CLIPTextModel
                found[names[int(value)]] = model.get_submodule(path)
    return found


@pytest.fixture
def diffusers_converter():
    """`diffusers_modules_for`, as a fixture."""
    return diffusers_modules_for


@pytest.fixture(scope="session")
def sdxl_meta():
    """Full SDXL's U-Net and text encoders from gafu's shipped configs, on the meta device (no weights)."""
    from gafu.models.load import meta_model

    return meta_model()


def preset_for_diffusers(name: str, folder: Path) -> Path:
    """A LyCORIS preset file that selects on the diffusers U-Net what `name` selects on kohya's SGM one.

    kohya's SGM U-Net calls its attention class CrossAttention (diffusers: Attention), has plain
    Sequentials where diffusers has TimestepEmbedding, and has no layers named conv_in, conv_out
    or time_embedding.* (so those preset names match nothing there).
    """
    from lycoris.config import PRESET

    preset = dict(PRESET[name])
    sgm_to_diffusers = {"CrossAttention": "Attention"}
    preset["unet_target_module"] = [
        sgm_to_diffusers.get(c, c) for c in preset["unet_target_module"] if c != "TimestepEmbedding"
    ]
    preset["unet_target_name"] = [
        n
        for n in preset["unet_target_name"]
        if n not in ("conv_in", "conv_out") and not n.startswith("time_embedding")
    ]
    path = folder / f"{name}-on-diffusers.toml"
    import toml  # LyCORIS reads presets with it

    path.write_text(toml.dumps(preset), encoding="utf-8")
    return path


def lycoris_kohya_network(unet, te1, te2, settings, folder: Path):
    """LyCORIS's own kohya network (`lycoris.kohya.create_network`, as sd-scripts calls it)."""
    from lycoris.kohya import create_network

    return create_network(
        1.0,
        settings.dim,
        settings.alpha,
        None,
        [te1, te2],
        unet,
        algo="lokr",
        factor=settings.factor,
        conv_dim=settings.conv_dim,
        conv_alpha=settings.conv_alpha,
        preset=str(preset_for_diffusers(settings.preset, folder)),
    )


@pytest.fixture
def lycoris_network():
    """`lycoris_kohya_network`, as a fixture."""
    return lycoris_kohya_network
