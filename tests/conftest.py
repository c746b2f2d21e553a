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


# --- tagging (gafu tag) ------------------------------------------------------------------------
@pytest.fixture(scope="session")
def tiny_tagger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A WD-format tagger folder (model.onnx + selected_tags.csv) with gafu's tiny default tags."""
    from gafu.tagging.tiny import build_tiny_tagger

    return build_tiny_tagger(tmp_path_factory.mktemp("tiny-tagger"))


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
    from gafu.prep.manifest import ManifestEntry, load_manifest, save_manifest

    if isinstance(pixels, tuple):
        pixels = np.full((size[1], size[0], 3), pixels, dtype=np.uint8)
    path = project.concept_dir(which) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    manifest = load_manifest(project.prep_manifest_path)
    manifest.entries[path.relative_to(project.root).as_posix()] = ManifestEntry(
        set=which,
        source=(project.root / "originals" / name).as_posix(),
        source_sha256="0" * 64,
        source_size=(pixels.shape[1], pixels.shape[0]),
        settings="test",
        output_size=(pixels.shape[1], pixels.shape[0]),
        bars=bars,
    )
    save_manifest(manifest, project.prep_manifest_path)
    return path


def fake_hub_cache(repo_id: str, tagger_folder: Path) -> str:
    """Lay the tagger out as huggingface_hub caches a download: snapshots/<revision>/… + refs/main."""
    import uuid

    from huggingface_hub import constants

    repo = Path(constants.HF_HUB_CACHE) / ("models--" + repo_id.replace("/", "--"))
    revision = uuid.uuid4().hex + uuid.uuid4().hex[:8]  # 40 hex digits, like a commit hash
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    for name in ("model.onnx", "selected_tags.csv"):
        (snapshot / name).write_bytes((tagger_folder / name).read_bytes())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision, encoding="utf-8")
    return revision
