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
