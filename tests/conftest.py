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
# Tiny models run best on one thread: with torch's default (a thread per core) their small ops
# slow down a hundredfold as soon as the 2 cores are busy with anything else.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pytest
from PIL import Image

from gafu.init import init_project
from gafu.network.summary import AdaptedModule, NetworkSummary
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


def gafu_env(**extra: str) -> dict[str, str]:
    """The environment for `python -m gafu` in a subprocess, importing gafu from this checkout."""
    import gafu

    return {**os.environ, "PYTHONPATH": str(Path(gafu.__file__).resolve().parents[1]), **extra}


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


# --- captioned datasets (gafu tags, gafu check) ---------------------------------------------------
Captions = list[list[str] | None]  # one entry per picture: its tags, or None for no caption file


def write_captioned_set(
    project: Project,
    which: str,
    captions: Captions,
    *,
    size: tuple[int, int] = (64, 64),
    bars: dict[int, str] | None = None,
    seed: int = 0,
) -> list[Path]:
    """Prepared pictures `<t|r>NNN.png` in a set's concept folder, with captions and manifest entries."""
    from gafu.captions.text import write_caption

    folder = project.concept_dir(which)
    paths = []
    for i, tags in enumerate(captions):
        path = write_picture(folder / f"{which[0]}{i:03d}.png", size, seed=seed + 7919 * i + len(which))
        if tags is not None:
            write_caption(path.with_suffix(".txt"), tags)
        paths.append(path)
    record_prepared(project, which, paths, size, bars=bars or {})
    return paths


def record_prepared(
    project: Project, which: str, paths: list[Path], size: tuple[int, int], *, bars: dict[int, str]
) -> None:
    """Add manifest entries for pictures put where prep would (the i-th with bars[i], if any)."""
    from gafu.prep.manifest import ManifestEntry, load_manifest, save_manifest

    manifest = load_manifest(project.prep_manifest_path)
    for i, path in enumerate(paths):
        manifest.entries[path.relative_to(project.root).as_posix()] = ManifestEntry(
            set=which,
            source=(project.root / "originals" / which / path.name).as_posix(),
            source_sha256=f"{i:064x}",
            source_size=size,
            settings="test",
            output_size=size,
            bars=bars.get(i),
        )
    save_manifest(manifest, project.prep_manifest_path)


# --- plan: prepared datasets written directly (no prep stage needed) ---------------------------
def write_prepared_set(
    project: Project, which: str, count: int, size: tuple[int, int] = (1024, 1024), *, captions: bool = True
) -> list[Path]:
    """`count` flat pictures of `size` (+ captions) in the set's concept folder, as prep leaves them."""
    folder = project.concept_dir(which)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"{which}_{i:04d}.png"
        Image.new("L", size, 128).save(path)  # flat grey: fast to write; only the size matters here
        if captions:
            first = f"{project.config.project.trigger}, " if which == "target" else ""
            path.with_suffix(".txt").write_text(f"{first}1girl, solo", encoding="utf-8")
        paths.append(path)
    return paths


@pytest.fixture
def make_captioned_project(make_project: Callable[..., Project]) -> Callable[..., Project]:
    """Factory: a project whose dataset is already prepared and captioned (see `write_captioned_set`)."""

    def make(target: Captions, reg: Captions, **kwargs) -> Project:
        project = make_project(n_target=1, n_reg=1 if reg else 0)
        write_captioned_set(project, "target", target, seed=100, **kwargs)
        if reg:
            write_captioned_set(project, "reg", reg, seed=50_000, **kwargs)
        return project

    return make


@pytest.fixture
def prepared_project(make_project: Callable[..., Project]) -> Callable[..., Project]:
    """Factory: a project whose dataset/ holds `n_target` and `n_reg` prepared pictures of `size`."""

    def make(
        n_target: int = 40, n_reg: int = 40, size: tuple[int, int] = (1024, 1024), **init_kwargs
    ) -> Project:
        project = make_project(n_target=1, n_reg=1 if n_reg else 0, **init_kwargs)
        write_prepared_set(project, "target", n_target, size)
        write_prepared_set(project, "reg", n_reg, size)
        return project

    return make


def small_network_summary() -> NetworkSummary:
    """A NetworkSummary made from the shared types (the plan's tests do not depend on the builder)."""
    modules = [
        AdaptedModule(
            "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q",
            "unet",
            "input_blocks.4",
            "linear",
            (640, 640),
            True,
            8 * 8 + 80 * 80,
        ),
        AdaptedModule(
            "lora_unet_input_blocks_4_1_transformer_blocks_0_ff_net_0_proj",
            "unet",
            "input_blocks.4",
            "linear",
            (5120, 640),
            False,
            8 * 8 + 640 * 128 + 128 * 80,
        ),
        AdaptedModule(
            "lora_unet_middle_block_0_in_layers_2",
            "unet",
            "middle_block",
            "conv3x3",
            (1280, 1280, 3, 3),
            True,
            8 * 8 + 160 * 160 * 9,
        ),
        AdaptedModule(
            "lora_te1_text_model_encoder_layers_0_self_attn_q_proj",
            "te1",
            "te1",
            "linear",
            (768, 768),
            True,
            8 * 8 + 96 * 96,
        ),
    ]
    return NetworkSummary(modules=modules)


# --- tagging (gafu tag) ------------------------------------------------------------------------
@pytest.fixture(scope="session")
def tiny_tagger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A WD-format tagger folder (model.onnx + selected_tags.csv) with gafu's tiny default tags."""
    from gafu.tagging.tiny import build_tiny_tagger

    return build_tiny_tagger(tmp_path_factory.mktemp("tiny-tagger"))


@pytest.fixture
def untagged_project(make_project, tiny_tagger) -> Callable[..., Project]:
    """Factory: prepared pictures without captions, and the tiny tagger set in gafu.toml."""
    from gafu.config import save_config

    def make(n_target: int = 4, n_reg: int = 3) -> Project:
        project = make_project(n_target=0, n_reg=0)
        project.config.tag.tagger = str(tiny_tagger)
        save_config(project.config, project.config_path)
        project = Project.open(project.root)
        write_captioned_set(project, "target", [None] * n_target, seed=100)
        write_captioned_set(project, "reg", [None] * n_reg, seed=50_000)
        return project

    return make


def add_prepared_picture(
    project: Project,
    which: str,
    name: str,
    pixels: np.ndarray | tuple[int, int, int],
    *,
    size: tuple[int, int] = (64, 64),
    bars: str | None = None,
) -> Path:
    """Put a picture where prep would (RGB array, or a flat colour of `size`) with its manifest entry."""
    if isinstance(pixels, tuple):
        pixels = np.full((size[1], size[0], 3), pixels, dtype=np.uint8)
    path = project.concept_dir(which) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    picture_size = (pixels.shape[1], pixels.shape[0])
    record_prepared(project, which, [path], picture_size, bars={0: bars} if bars else {})
    return path


def fake_hub_cache(
    repo_id: str, tagger_folder: Path, names: tuple[str, ...] = ("model.onnx", "selected_tags.csv")
) -> str:
    """Lay a model folder's files out as huggingface_hub caches them: snapshots/<revision>/… + refs/main."""
    import uuid

    from huggingface_hub import constants

    repo = Path(constants.HF_HUB_CACHE) / ("models--" + repo_id.replace("/", "--"))
    revision = uuid.uuid4().hex + uuid.uuid4().hex[:8]  # 40 hex digits, like a commit hash
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    for name in names:
        (snapshot / name).write_bytes((tagger_folder / name).read_bytes())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision, encoding="utf-8")
    return revision


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CLIP vision encoder of CLIP's architecture with random weights, saved as transformers saves one."""
    import torch
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    folder = tmp_path_factory.mktemp("tiny-clip")
    torch.manual_seed(0)
    config = CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=64,
        patch_size=16, projection_dim=16,
    )  # fmt: skip
    CLIPVisionModel(config).save_pretrained(folder)
    processor = CLIPImageProcessor(size={"shortest_edge": 64}, crop_size={"height": 64, "width": 64})
    processor.save_pretrained(folder)
    return folder


# --- prep: a folder of awkward originals (built once per session) --------------------------------
def _exif_rotated(path: Path) -> None:
    image = Image.fromarray(np.random.default_rng(7).integers(0, 256, (200, 400, 3), dtype=np.uint8), "RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90°: 400×200 stored, 200×400 displayed
    image.save(path, exif=exif, quality=90)


def _with_alpha(path: Path, size: tuple[int, int], mode: str) -> None:
    rgba = Image.new("RGBA", size, (0, 0, 0, 0))
    rgba.paste(Image.open(write_picture(path, size, seed=len(mode) + size[0])).convert("RGBA"), (0, 0))
    rgba.putalpha(Image.linear_gradient("L").resize(size))
    rgba.convert(mode).save(path)


def _animated(path: Path) -> None:
    frames = [
        Image.new("RGB", (320, 240), colour) for colour in [(200, 30, 30), (30, 200, 30), (30, 30, 200)]
    ]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)


# name → (displayed width, displayed height): what each awkward original looks like after opening
AWKWARD_SIZES = {
    "landscape.png": (1200, 800),
    "portrait.jpg": (600, 900),
    "rotated.jpg": (200, 400),
    "alpha.png": (300, 300),
    "palette.png": (256, 200),
    "animated.gif": (320, 240),
    "cmyk.jpg": (500, 500),
    "grey16.tif": (640, 400),
    "grey.bmp": (300, 450),
    "photo.webp": (700, 500),
    "tiny.png": (8, 8),
    "huge.png": (2600, 1700),
    "panorama.png": (2000, 150),
    "tall.png": (150, 1500),
    "near_square.png": (1000, 990),
    "la.png": (320, 320),
    "UPPER.PNG": (512, 384),
    "a.jpg": (400, 300),
    "a.png": (300, 400),
    "sub/a.png": (360, 360),
    "絵 ñ.png": (480, 640),
}


def write_awkward_pictures(folder: Path) -> dict[str, tuple[int, int]]:
    """Write every awkward original of AWKWARD_SIZES (and AVIF where Pillow has it) into `folder`."""
    from PIL import features

    sizes = dict(AWKWARD_SIZES)
    plain = [
        "landscape.png",
        "huge.png",
        "panorama.png",
        "tall.png",
        "near_square.png",
        "tiny.png",
        "UPPER.PNG",
        "a.png",
        "sub/a.png",
        "絵 ñ.png",
    ]
    for seed, name in enumerate(plain):
        write_picture(folder / name, sizes[name], seed=300 + seed)
    write_picture(folder / "portrait.jpg", sizes["portrait.jpg"], seed=320, fmt="JPEG")
    write_picture(folder / "a.jpg", sizes["a.jpg"], seed=321, fmt="JPEG")
    write_picture(folder / "cmyk.jpg", sizes["cmyk.jpg"], seed=322, mode="CMYK", fmt="JPEG")
    write_picture(folder / "grey.bmp", sizes["grey.bmp"], seed=323, mode="L", fmt="BMP")
    write_picture(folder / "photo.webp", sizes["photo.webp"], seed=324, fmt="WEBP")
    grey16 = (np.random.default_rng(325).integers(0, 65535, (4, 4)) * np.ones((1, 1))).astype(np.uint16)
    Image.fromarray(grey16).resize(sizes["grey16.tif"], Image.Resampling.NEAREST).save(folder / "grey16.tif")
    _exif_rotated(folder / "rotated.jpg")
    _with_alpha(folder / "alpha.png", sizes["alpha.png"], "RGBA")
    _with_alpha(folder / "la.png", sizes["la.png"], "LA")
    palette = write_picture(folder / "palette.png", sizes["palette.png"], seed=326, mode="P")
    with Image.open(palette) as image:
        image.save(palette, transparency=0)
    _animated(folder / "animated.gif")
    if features.check("avif"):
        write_picture(folder / "avif.avif", (640, 360), seed=327, fmt="AVIF")
        sizes["avif.avif"] = (640, 360)
    return sizes


def snapshot_files(folder: Path) -> dict[str, tuple[int, str]]:
    """Every file under `folder`: (modification time, SHA-256), to show that nothing was rewritten."""
    import hashlib

    return {
        path.relative_to(folder).as_posix(): (
            path.stat().st_mtime_ns,
            hashlib.sha256(path.read_bytes()).hexdigest(),
        )
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="session")
def awkward_originals(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, tuple[int, int]]]:
    """A read-only-by-convention folder of awkward originals and their displayed sizes (copy to modify)."""
    folder = tmp_path_factory.mktemp("awkward") / "originals"
    return folder, write_awkward_pictures(folder)


# --- models and the LoKr network (issue 6) -------------------------------------------------------
# The tiny SDXL-architecture model is built once per session; torch and diffusers are imported
# inside the fixtures so tests that do not need them do not pay for the import.


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


def hub_cache_snapshot(repo_id: str, files: dict[str, bytes], revision: str | None = None) -> Path:
    """Put files into the hub cache exactly as huggingface_hub lays out a download; returns the snapshot.

    `models--owner--name/blobs/<git sha1 of the content>`, `snapshots/<revision>/<path>` as relative
    symlinks to the blobs (copies where symlinks are not allowed, as huggingface_hub does on
    Windows), and `refs/main` holding the revision.
    """
    import hashlib

    from huggingface_hub import constants

    repo = Path(constants.HF_HUB_CACHE) / ("models--" + repo_id.replace("/", "--"))
    revision = revision or hashlib.sha1(repo_id.encode()).hexdigest()  # 40 hex digits, as a commit
    snapshot = repo / "snapshots" / revision
    for name, data in files.items():
        blob = repo / "blobs" / hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # git's blob id
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        target = snapshot / name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            target.symlink_to(os.path.relpath(blob, target.parent))
        except OSError:
            target.write_bytes(data)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(revision, encoding="utf-8")
    return snapshot


def _added_token(content: str, *, typed: bool) -> dict:
    token = {"content": content, "lstrip": False, "normalized": True, "rstrip": False, "single_word": False}
    return {"__type": "AddedToken", **token} if typed else token


def sdxl_tokenizer_settings(pad: str) -> dict[str, bytes]:
    """`special_tokens_map.json` and `tokenizer_config.json` as SDXL base 1.0 has them (pad: EOS or "!")."""
    import json

    specials = {"bos": "<|startoftext|>", "eos": "<|endoftext|>", "unk": "<|endoftext|>"}
    special_map = {f"{k}_token": _added_token(v, typed=False) for k, v in specials.items()}
    config = {
        "add_prefix_space": False,
        **{f"{k}_token": _added_token(v, typed=True) for k, v in specials.items()},
        "clean_up_tokenization_spaces": True,
        "do_lower_case": True,
        "errors": "replace",
        "model_max_length": 77,
        "pad_token": pad,
        "tokenizer_class": "CLIPTokenizer",
    }
    return {
        "special_tokens_map.json": json.dumps({**special_map, "pad_token": pad}, indent=2).encode(),
        "tokenizer_config.json": json.dumps(config, indent=2).encode(),
    }


@pytest.fixture(scope="session")
def sdxl_tokenizer_files() -> dict[str, bytes]:
    """SDXL base's tokenizer folders (`tokenizer/…`, `tokenizer_2/…`, four files each), real CLIP vocabulary.

    The vocabulary is `bpe_simple_vocab_16e6.txt.gz` as the openai-clip package ships it (49408
    tokens, 48894 merges), turned into `vocab.json` and `merges.txt` as CLIP's tokenizer reads it.
    """
    import json

    from gafu.models.tokenizers import clip_bpe_file, clip_vocabulary

    bpe = clip_bpe_file()
    assert bpe is not None, "the tests need openai-clip (pip install -e '.[test]')"
    tokens, merges = clip_vocabulary(bpe)
    vocabulary = {
        "vocab.json": json.dumps({token: i for i, token in enumerate(tokens)}).encode(),
        "merges.txt": ("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges)).encode(),
    }
    files = {}
    for name, pad in (("tokenizer", "<|endoftext|>"), ("tokenizer_2", "!")):
        for file, data in {**vocabulary, **sdxl_tokenizer_settings(pad)}.items():
            files[f"{name}/{file}"] = data
    return files


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


# --- sample grids (issue 8) ------------------------------------------------------------------------
SAMPLE_SETTINGS = {"width": 64, "height": 64, "steps": 3, "cfg": 5.0}  # tiny pictures, few steps


@pytest.fixture(scope="session")
def tiny_lokr_files(tiny_model, tmp_path_factory) -> list[Path]:
    """Two LoKr files for the tiny model (random, clearly visible weights; text encoders included)."""
    import torch

    from gafu.families import get_family
    from gafu.models.load import load_base_model
    from gafu.network.files import lokr_metadata, save_network
    from gafu.network.lokr import build_network
    from gafu.network.settings import LokrSettings

    base = load_base_model(tiny_model.diffusers_dir, dtype=torch.float32)
    settings = LokrSettings(dim=4, conv_dim=4, alpha=4.0, conv_alpha=4.0, factor=4)
    folder = tmp_path_factory.mktemp("lokr")
    paths = []
    for seed in (1, 2):
        network = build_network(base.unet, base.text_encoders, settings)
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for parameter in network.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
        metadata = lokr_metadata(
            settings, get_family("illustrious"), output_name="mzh", resolution=64, num_epochs=2
        )
        paths.append(
            save_network(network, folder / f"mzh-e{seed:06d}.safetensors", metadata=metadata, dtype="fp32")
        )
    return paths


@pytest.fixture
def sample_project(make_captioned_project, tiny_model, tiny_lokr_files) -> Project:
    """A captioned project on the tiny model, sampling 64 px pictures in 3 steps, with two saved epochs."""
    import dataclasses
    import shutil

    from gafu.config import save_config

    project = make_captioned_project(
        [
            ["mzh_style", "1girl", "white dress"],
            ["mzh_style", "1girl", "white dress", "smile"],
            ["mzh_style", "black hair"],
        ],
        [["1girl", "black dress"]],
    )
    config = project.config
    config.model.path = str(tiny_model.diffusers_dir)
    config.train.output_name = "mzh"
    config = dataclasses.replace(config, sample=dataclasses.replace(config.sample, **SAMPLE_SETTINGS))
    save_config(config, project.config_path)
    project.output_dir.mkdir(parents=True, exist_ok=True)
    for path in tiny_lokr_files:
        shutil.copy2(path, project.output_dir / path.name)
    return Project.open(project.root)


# --- training (gafu train) ---------------------------------------------------------------------
# A project on the tiny model: 64 px pictures (never upscaled), a few epochs, fp32 on the CPU,
# LoKr files in fp32
# (so resumed and uninterrupted runs compare exactly).
TRAIN_DEFAULTS = {
    "resolution": 512,  # the smallest the plan accepts; 64 px pictures train at their own size
    "epochs": 2,
    "batch_size": 2,
    "mixed_precision": "no",
    "gradient_checkpointing": False,
    "save_every_epochs": 1,
    "save_dtype": "fp32",
    "restart_every_epochs": 1,
    "multires_noise_iterations": 2,
}


# The style probe at every save stays on in training tests (a resumed run must still equal an
# uninterrupted one), on one picture per set at two timesteps, so it costs little.
PROBE_SETTINGS = {"pictures": 1, "timesteps": 2}


def configure_training(project: Project, *, probe: dict | None = None, **train: object) -> Project:
    """Set `[train]` values in the project's gafu.toml (over TRAIN_DEFAULTS) and reopen it.

    Samples taken during training are tiny too (SAMPLE_SETTINGS): the tiny model at the family's
    side would take minutes; `probe` sets `[eval]` values over PROBE_SETTINGS.
    """
    import dataclasses

    from gafu.config import save_config

    config = project.config
    config.train = dataclasses.replace(config.train, **{**TRAIN_DEFAULTS, **train})
    config.sample = dataclasses.replace(config.sample, **SAMPLE_SETTINGS)
    config.eval = dataclasses.replace(config.eval, **{**PROBE_SETTINGS, **(probe or {})})
    save_config(config, project.config_path)
    return Project.open(project.root)


@pytest.fixture
def train_project(make_project, tiny_model) -> Callable[..., Project]:
    """Factory: a prepared, captioned project on the tiny model, ready for `gafu train`."""

    def make(
        n_target: int = 4, n_reg: int = 4, *, family: str = "sdxl", probe: dict | None = None, **train: object
    ) -> Project:
        project = make_project(
            n_target=1, n_reg=1 if n_reg else 0, family=family, model=str(tiny_model.diffusers_dir)
        )
        trigger = project.config.project.trigger
        extra = ["smile", "white dress", "black hair", "outdoors", "sky"]
        target = [[trigger, "1girl", "solo", extra[i % 5], extra[(i + 2) % 5]] for i in range(n_target)]
        write_captioned_set(project, "target", target, seed=300)
        if n_reg:
            reg = [["1girl", "solo", extra[i % 5], extra[(i + 1) % 5]] for i in range(n_reg)]
            write_captioned_set(project, "reg", reg, seed=90_000)
        return configure_training(project, probe=probe, **train)

    return make
