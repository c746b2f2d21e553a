"""The latent cache: each picture encoded once by the VAE in fp32 and kept on disk (P-cache_latents).

A latent is keyed by the picture's content hash, its bucket, how its pixels are made
(`PIXELS_VERSION`) and the VAE's identity (a hash of its config and weights), so a changed
picture, bucket or VAE gets a new entry and every other run of any project reuses the old ones.
Entries are written atomically: an interrupted cache is never read back half-written.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gafu.fsio import atomic_path, sha256_file
from gafu.images import load_picture, resize_area
from gafu.train.data import TrainPicture

ENCODE_BATCH = 4  # pictures per VAE call while caching
# How a picture becomes its bucket's pixels and crop ids (`resize_and_crop`); a new one re-encodes.
# 2: sd-scripts' resize and trim, with its crop ids (was: scaled to cover with Lanczos).
PIXELS_VERSION = 2


@dataclass(frozen=True)
class CachedLatent:
    """A picture's latent and the size conditioning SDXL gets with it."""

    latent: torch.Tensor  # (4, H/8, W/8), already multiplied by the VAE's scaling factor
    original_size: tuple[int, int]  # (height, width) of the picture file, as SDXL's time ids take it
    crop_top_left: tuple[int, int]  # (top, left) of the crop taken after resizing


def vae_identity(vae: torch.nn.Module) -> str:
    """A hash of the VAE's config and weights: latents of another VAE are never reused."""
    digest = hashlib.sha256(json.dumps(dict(vae.config), sort_keys=True, default=str).encode("utf-8"))
    for name, tensor in sorted(vae.state_dict().items()):
        digest.update(name.encode("utf-8"))
        digest.update(tensor.detach().to("cpu", torch.float32).numpy().tobytes())
    return digest.hexdigest()


def resize_and_crop(picture: TrainPicture) -> tuple[torch.Tensor, tuple[int, int]]:
    """The picture as sd-scripts makes it for its bucket; a (3, H, W) tensor in [-1, 1] and the crop ids.

    Scaled to its `resized` size (area averaging when it shrinks both sides, Lanczos otherwise:
    `library/utils.py` `resize_image`), then trimmed to the bucket around the centre
    (`trim_and_resize_if_required`, library/train_util.py lines 2971-2985 at 48d368f). A picture
    prepared at the training side is already its bucket and is used as it is.
    """
    image = load_picture(picture.picture.path).image
    width, height = picture.size
    if picture.resized != picture.size:
        shrinks = picture.resized[0] <= width and picture.resized[1] <= height
        image = resize_area(image, picture.resized) if shrinks else image.resize(picture.resized, _lanczos())
    bucket_w, bucket_h = picture.bucket
    left, top = (image.width - bucket_w) // 2, (image.height - bucket_h) // 2
    image = image.crop((left, top, left + bucket_w, top + bucket_h))
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32)).permute(2, 0, 1)
    return pixels / 127.5 - 1.0, crop_top_left(picture.size, picture.bucket)


def crop_top_left(size: tuple[int, int], bucket: tuple[int, int]) -> tuple[int, int]:
    """SDXL's crop time ids `(top, left)` for a picture of `size` in `bucket`, as sd-scripts sets them.

    sd-scripts does not use the trimmed box's offsets: `BucketManager.get_crop_ltrb`
    (library/train_util.py lines 349-366 at 48d368f) fits the picture's aspect ratio inside the
    bucket and takes that box's top-left, so a picture of the bucket's shape gets (0, 0).
    """
    (width, height), (bucket_w, bucket_h) = size, bucket
    aspect = width / height
    if bucket_w / bucket_h > aspect:
        fitted_w, fitted_h = bucket_h * aspect, bucket_h
    else:
        fitted_w, fitted_h = bucket_w, bucket_w / aspect
    return int((bucket_h - fitted_h) // 2), int((bucket_w - fitted_w) // 2)


def _lanczos() -> int:
    from PIL import Image

    return Image.Resampling.LANCZOS


def cache_path(cache_dir: Path, content_hash: str, bucket: tuple[int, int], vae_id: str) -> Path:
    """Where a latent lives: `<hash[:2]>/<hash>-<W>x<H>-<vae id>-p<pixels version>.safetensors`."""
    name = f"{content_hash}-{bucket[0]}x{bucket[1]}-{vae_id[:16]}-p{PIXELS_VERSION}.safetensors"
    return cache_dir / content_hash[:2] / name


def cached_latents(
    pictures: list[TrainPicture],
    vae: torch.nn.Module,
    cache_dir: Path,
    *,
    device: torch.device,
    on_progress=None,
) -> tuple[dict[Path, CachedLatent], int]:
    """Latents of every picture (read from the cache, or encoded once and written to it).

    Returns the latents by picture path and how many were encoded now. `on_progress(done, total)`
    is called before the first picture is encoded and after each batch.
    """
    from safetensors.torch import load_file

    vae_id = vae_identity(vae)
    result: dict[Path, CachedLatent] = {}
    missing: list[tuple[TrainPicture, Path]] = []
    for picture in pictures:
        path = cache_path(cache_dir, sha256_file(picture.picture.path), picture.bucket, vae_id)
        if path.is_file():
            tensors = load_file(str(path))
            result[picture.picture.path] = _entry(picture, tensors["latent"], tensors["crop_top_left"])
        else:
            missing.append((picture, path))
    if missing:
        _encode(missing, vae, device, result, on_progress)
    return result, len(missing)


def _encode(missing, vae, device, result, on_progress) -> None:
    from safetensors.torch import save_file

    by_bucket: dict[tuple[int, int], list] = {}
    for item in missing:
        by_bucket.setdefault(item[0].bucket, []).append(item)
    vae_state = (vae.device, vae.dtype, vae.training)
    vae.to(device).eval()
    if vae.dtype != torch.float32:
        vae.to(dtype=torch.float32)  # SDXL's VAE overflows in fp16
    done = 0
    if on_progress is not None:
        on_progress(0, len(missing))
    try:
        for items in by_bucket.values():
            for start in range(0, len(items), ENCODE_BATCH):
                chunk = items[start : start + ENCODE_BATCH]
                pixels, crops = zip(*(resize_and_crop(p) for p, _ in chunk), strict=True)
                latents = _encode_pixels(vae, torch.stack(pixels).to(device), chunk)
                for (picture, path), latent, crop in zip(chunk, latents, crops, strict=True):
                    tensors = {"latent": latent.contiguous(), "crop_top_left": torch.tensor(crop)}
                    with atomic_path(path) as tmp:
                        save_file(tensors, str(tmp))
                    result[picture.picture.path] = _entry(
                        picture, tensors["latent"], tensors["crop_top_left"]
                    )
                done += len(chunk)
                if on_progress is not None:
                    on_progress(done, len(missing))
    finally:
        vae.to(vae_state[0]).train(vae_state[2])
        if vae.dtype != vae_state[1]:
            vae.to(dtype=vae_state[1])


@torch.no_grad()
def _encode_pixels(vae, pixels: torch.Tensor, chunk) -> torch.Tensor:
    # A sample of the latent distribution, with noise seeded by the picture's cache entry, so an
    # entry is the same whenever it is computed.
    distribution = vae.encode(pixels).latent_dist
    latents = []
    for index, (_, path) in enumerate(chunk):
        generator = torch.Generator(device=pixels.device).manual_seed(int(path.stem[:15], 16))
        mean, std = distribution.mean[index], distribution.std[index]
        noise = torch.randn(mean.shape, generator=generator, device=pixels.device, dtype=mean.dtype)
        latents.append((mean + std * noise) * vae.config.scaling_factor)
    return torch.stack(latents).to("cpu", torch.float32)


def _entry(picture: TrainPicture, latent: torch.Tensor, crop: torch.Tensor) -> CachedLatent:
    width, height = picture.size
    return CachedLatent(
        latent=latent, original_size=(height, width), crop_top_left=(int(crop[0]), int(crop[1]))
    )
