"""Loading base models: single SGM files, diffusers folders, hub repo ids; and refusing bad inputs."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from gafu.errors import GafuError
from gafu.models import tokenizers
from gafu.models.load import load_base_model, load_project_model
from gafu.models.tiny import build_tiny_components, save_sgm_checkpoint
from gafu.models.tokenizers import SDXL_BASE_REPO

COMPONENTS = ("unet", "vae", "text_encoder", "text_encoder_2")


def assert_same_weights(a, b, *, dtype: torch.dtype | None = None) -> None:
    """Every component of two loaded models has the same keys and (cast to `dtype`) equal tensors."""
    for name in COMPONENTS:
        left, right = getattr(a, name).state_dict(), getattr(b, name).state_dict()
        assert left.keys() == right.keys(), name
        for key in left:
            x, y = left[key], right[key]
            if dtype is not None and x.is_floating_point():
                x, y = x.to(dtype), y.to(dtype)
            assert torch.equal(x, y), f"{name}.{key} differs"


# --- the same weights from every form -----------------------------------------------------------
def test_single_file_and_diffusers_folder_load_identical_weights(tiny_model, tiny_base):
    single = load_base_model(
        tiny_model.single_file,
        config_dir=tiny_model.config_dir,
        tokenizers=tiny_model.diffusers_dir,
        dtype=torch.float32,
    )
    assert single.source.kind == "single-file" and tiny_base.source.kind == "diffusers"
    assert_same_weights(single, tiny_base)
    assert single.tokenizer("a girl").input_ids == tiny_base.tokenizer("a girl").input_ids
    assert single.tokenizer_2.pad_token == "!"  # SDXL's second tokenizer pads with "!"


@pytest.mark.parametrize("file_dtype", [torch.float16, torch.bfloat16])
def test_half_precision_single_files_load_to_the_same_weights(tmp_path, tiny_model, tiny_base, file_dtype):
    path = tmp_path / "tiny-half.safetensors"
    save_sgm_checkpoint(build_tiny_components(seed=0), path, dtype=file_dtype)
    loaded = load_base_model(
        path, config_dir=tiny_model.config_dir, tokenizers=tiny_model.diffusers_dir, dtype=torch.float32
    )
    assert_same_weights(loaded, tiny_base, dtype=file_dtype)


def test_unet_in_training_dtype_vae_in_fp32_and_peak_ram_reported(tiny_model):
    base = load_base_model(
        tiny_model.single_file,
        config_dir=tiny_model.config_dir,
        tokenizers=tiny_model.diffusers_dir,
        dtype=torch.bfloat16,
    )
    assert base.unet.dtype == torch.bfloat16
    assert base.text_encoder.dtype == base.text_encoder_2.dtype == torch.bfloat16
    assert base.vae.dtype == torch.float32  # SDXL's VAE overflows in fp16
    assert 0 < base.memory.before_bytes <= base.memory.peak_bytes
    assert base.to_dict()["memory"]["ram_peak_mb"] > 0


def test_separate_vae_file_replaces_the_checkpoints(tmp_path, tiny_model, tiny_base):
    vae = build_tiny_components(seed=7)["vae"]
    path = tmp_path / "vae.safetensors"
    save_file({k: v.contiguous() for k, v in vae.state_dict().items()}, str(path))  # diffusers keys
    loaded = load_base_model(
        tiny_model.single_file,
        config_dir=tiny_model.config_dir,
        tokenizers=tiny_model.diffusers_dir,
        vae=path,
        dtype=torch.float32,
    )
    key = "decoder.conv_out.weight"
    assert torch.equal(loaded.vae.state_dict()[key], vae.state_dict()[key])
    assert not torch.equal(loaded.vae.state_dict()[key], tiny_base.vae.state_dict()[key])


def test_project_model_paths_are_relative_to_the_project(make_project, tiny_model):
    project = make_project()
    shutil.copy(tiny_model.single_file, project.root / "model.safetensors")
    project.config.model.path = "model.safetensors"
    project.config.model.config = str(tiny_model.config_dir)
    project.config.model.tokenizers = str(tiny_model.diffusers_dir)
    base = load_project_model(project, dtype=torch.float32)
    assert base.source.path == project.root / "model.safetensors"


def test_project_without_a_model_is_a_clear_error(make_project):
    with pytest.raises(GafuError, match=r"no base model is set.*\[model\] path"):
        load_project_model(make_project())


# --- v-prediction marker -----------------------------------------------------------------------------
def test_v_pred_key_with_an_epsilon_family_is_a_warning(tmp_path, tiny_model):
    path = tmp_path / "vpred.safetensors"
    save_sgm_checkpoint(build_tiny_components(seed=0), path, v_pred=True)
    kwargs = {"config_dir": tiny_model.config_dir, "tokenizers": tiny_model.diffusers_dir}
    eps = load_base_model(path, family="illustrious", **kwargs)
    assert eps.marks_v_prediction
    assert len(eps.warnings) == 1 and "v_pred" in eps.warnings[0] and "noob-vpred" in eps.warnings[0]
    assert load_base_model(path, family="noob-vpred", **kwargs).warnings == []
    assert load_base_model(tiny_model.single_file, family="illustrious", **kwargs).warnings == []


# --- hub repo ids, from a hub cache built here ------------------------------------------------------
def fake_hub_repo(repo_id: str, files: dict[str, Path]) -> Path:
    """Put files into the hub cache as huggingface_hub lays out a downloaded snapshot."""
    from huggingface_hub import constants

    repo = Path(constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}"
    commit = hashlib.sha1(repo_id.encode()).hexdigest()
    snapshot = repo / "snapshots" / commit
    for name, source in files.items():
        target = snapshot / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            shutil.copy(source, target)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return repo


@pytest.fixture
def sdxl_tokenizers_in_hub_cache(tiny_model):
    """SDXL base's tokenizer folders in the hub cache (removed afterwards: other tests need them absent)."""
    files = {name: tiny_model.diffusers_dir / name for name in ("tokenizer", "tokenizer_2")}
    repo = fake_hub_repo(SDXL_BASE_REPO, files)
    yield
    shutil.rmtree(repo)


def test_hub_repo_id_of_a_diffusers_model_loads_from_the_cache(tiny_model, tiny_base):
    fake_hub_repo("gafu-test/tiny-sdxl-diffusers", {".": tiny_model.diffusers_dir})
    base = load_base_model("gafu-test/tiny-sdxl-diffusers", dtype=torch.float32)
    assert base.source.kind == "diffusers" and base.source.hub_repo == "gafu-test/tiny-sdxl-diffusers"
    assert_same_weights(base, tiny_base)


def test_hub_repo_id_of_a_single_file_uses_sdxl_tokenizers_from_the_cache(
    tiny_model, tiny_base, sdxl_tokenizers_in_hub_cache
):
    fake_hub_repo("gafu-test/tiny-sdxl-single", {"tiny.safetensors": tiny_model.single_file})
    base = load_base_model(
        "gafu-test/tiny-sdxl-single", config_dir=tiny_model.config_dir, dtype=torch.float32
    )
    assert base.source.kind == "single-file" and base.source.path.name == "tiny.safetensors"
    assert_same_weights(base, tiny_base)
    assert base.tokenizer("a girl").input_ids == tiny_base.tokenizer("a girl").input_ids


def test_hub_repo_id_not_in_the_cache_offline_is_a_clear_error():
    with pytest.raises(GafuError, match=r"gafu-test/absent.*hub cache"):
        load_base_model("gafu-test/absent")


# --- refusing bad input ----------------------------------------------------------------------------------
def fake_checkpoint(path: Path, keys: list[str]) -> Path:
    save_file({key: torch.zeros(2, 4, 3, 3) for key in keys}, str(path))
    return path


SD15_KEYS = [
    "model.diffusion_model.input_blocks.0.0.weight",
    "model.diffusion_model.output_blocks.11.0.skip_connection.weight",
    "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight",
    "first_stage_model.encoder.conv_in.weight",
]
SD3_KEYS = [
    "model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight",
    "model.diffusion_model.pos_embed",
    "text_encoders.clip_l.transformer.text_model.embeddings.token_embedding.weight",
    "first_stage_model.encoder.conv_in.weight",
]


@pytest.mark.parametrize(
    ("keys", "looks_like"),
    [
        (SD15_KEYS, "Stable Diffusion 1.x"),
        (SD3_KEYS, "Stable Diffusion 3"),
        (["conditioner.embedders.0.model.transformer.resblocks.0.attn.in_proj_weight"], "SDXL refiner"),
    ],
)
def test_other_model_families_are_not_sdxl(tmp_path, keys, looks_like):
    path = fake_checkpoint(tmp_path / "other.safetensors", keys)
    with pytest.raises(GafuError, match=f"not an SDXL-family model: it looks like .*{looks_like}"):
        load_base_model(path)


def test_a_file_that_is_not_a_checkpoint(tmp_path, picture_writer):
    picture = picture_writer(tmp_path / "picture.png")
    renamed = tmp_path / "model.safetensors"
    shutil.copy(picture, renamed)
    with pytest.raises(GafuError, match=r"model\.safetensors is not a model checkpoint"):
        load_base_model(renamed)
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    with pytest.raises(GafuError, match="not a model checkpoint"):
        load_base_model(empty)


def test_a_pickle_checkpoint_is_refused(tmp_path):
    path = tmp_path / "model.ckpt"
    path.write_bytes(b"\x80\x04not really")
    with pytest.raises(GafuError, match=r"pickle checkpoint .*\.safetensors only"):
        load_base_model(path)


def test_a_truncated_checkpoint(tmp_path, tiny_model):
    data = tiny_model.single_file.read_bytes()
    path = tmp_path / "cut.safetensors"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(GafuError, match=r"truncated.*fetch the file again"):
        load_base_model(path, config_dir=tiny_model.config_dir)


def test_a_single_file_that_does_not_fit_the_shipped_sdxl_config(tiny_model):
    # The tiny model is SDXL-shaped but small: against SDXL's real sizes its weights do not fit.
    with pytest.raises(GafuError, match=r"do not fit the architecture.*\[model\] config"):
        load_base_model(tiny_model.single_file, tokenizers=tiny_model.diffusers_dir)


def test_a_config_folder_without_configs(tmp_path, tiny_model):
    with pytest.raises(GafuError, match=r"not a model config folder: unet/config\.json"):
        load_base_model(tiny_model.single_file, config_dir=tmp_path)


def test_a_diffusers_folder_of_another_family(tmp_path, tiny_model):
    folder = tmp_path / "sd15"
    shutil.copytree(tiny_model.config_dir, folder)
    (folder / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline", "text_encoder": []}')
    with pytest.raises(GafuError, match="not an SDXL-family model"):
        load_base_model(folder)


def test_missing_paths_and_plain_folders(tmp_path):
    with pytest.raises(GafuError, match="no such file or folder"):
        load_base_model(tmp_path / "absent.safetensors")
    with pytest.raises(GafuError, match="not a diffusers model"):
        load_base_model(tmp_path)


def test_missing_tokenizer_files_are_named(tmp_path, tiny_model):
    tokenizers = tmp_path / "tokenizers"
    shutil.copytree(tiny_model.diffusers_dir / "tokenizer", tokenizers / "tokenizer")
    shutil.copytree(tiny_model.diffusers_dir / "tokenizer_2", tokenizers / "tokenizer_2")
    (tokenizers / "tokenizer_2" / "merges.txt").unlink()
    with pytest.raises(GafuError, match=r"tokenizer files missing in .*tokenizer_2/merges\.txt"):
        load_base_model(tiny_model.single_file, config_dir=tiny_model.config_dir, tokenizers=tokenizers)


def test_no_tokenizers_anywhere_says_how_to_supply_them(tiny_model, monkeypatch):
    monkeypatch.setattr(tokenizers, "clip_bpe_file", lambda: None)  # as without openai-clip installed
    with pytest.raises(
        GafuError,
        match=r"tokenizer files .* not found.*\[model\] tokenizers.*pip install openai-clip.*hf download",
    ):
        load_base_model(tiny_model.single_file, config_dir=tiny_model.config_dir)


def test_project_config_dir_names_the_architecture_without_loading(make_project, tiny_model):
    from gafu.models.load import project_config_dir

    project = make_project()
    assert project_config_dir(project) is None  # no model yet: SDXL's shipped configs
    project.config.model.path = str(tiny_model.diffusers_dir)
    assert project_config_dir(project) == tiny_model.diffusers_dir
    project.config.model.path = str(tiny_model.single_file)
    assert project_config_dir(project) is None
    project.config.model.config = str(tiny_model.config_dir)
    assert project_config_dir(project) == tiny_model.config_dir


def test_tokenizer_folders_with_only_the_vocabularies_load_with_sdxls_settings_and_a_note(
    tmp_path, tiny_model
):
    tokenizers = tmp_path / "tokenizers"
    for name in ("tokenizer", "tokenizer_2"):
        for file in ("vocab.json", "merges.txt"):
            (tokenizers / name).mkdir(parents=True, exist_ok=True)
            shutil.copy(tiny_model.diffusers_dir / name / file, tokenizers / name / file)
    base = load_base_model(
        tiny_model.single_file, config_dir=tiny_model.config_dir, tokenizers=tokenizers, dtype=torch.float32
    )
    assert base.tokenizer.model_max_length == base.tokenizer_2.model_max_length == 77
    assert base.tokenizer_2.pad_token == "!" and base.tokenizer.pad_token == "<|endoftext|>"
    assert len(base.notes) == 2 and "SDXL's settings applied" in base.notes[0]
    assert base.to_dict()["notes"] == base.notes and base.to_dict()["tokenizers"] == str(tokenizers)
