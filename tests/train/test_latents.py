"""The latent cache: encoded once in fp32, keyed by content + bucket + VAE, written atomically."""

import copy

import torch

from gafu.plan import resolve_plan
from gafu.train.data import load_pictures
from gafu.train.latents import cached_latents, resize_and_crop, vae_identity
from tests.conftest import write_picture


def test_latents_are_cached_once_and_reused(train_project, tiny_base):
    project = train_project(3, 2)
    pictures = load_pictures(project, resolve_plan(project))
    cache = project.latent_cache_dir
    first, encoded = cached_latents(pictures, tiny_base.vae, cache, device=torch.device("cpu"))
    assert encoded == 5
    files = sorted(cache.rglob("*.safetensors"))
    assert len(files) == 5 and not list(cache.rglob("*.tmp"))
    again, encoded = cached_latents(pictures, tiny_base.vae, cache, device=torch.device("cpu"))
    assert encoded == 0
    for path, entry in first.items():
        assert entry.latent.shape == (4, 8, 8) and entry.latent.dtype == torch.float32
        assert torch.equal(entry.latent, again[path].latent)
        assert entry.original_size == (64, 64) and entry.crop_top_left == (0, 0)
    # A changed picture gets a new entry; the others are reused.
    write_picture(pictures[0].picture.path, (64, 64), seed=12345)
    _, encoded = cached_latents(pictures, tiny_base.vae, cache, device=torch.device("cpu"))
    assert encoded == 1


def test_another_vae_gets_its_own_entries(train_project, tiny_base):
    project = train_project(2, 0)
    pictures = load_pictures(project, resolve_plan(project))
    cached_latents(pictures, tiny_base.vae, project.latent_cache_dir, device=torch.device("cpu"))
    other = copy.deepcopy(tiny_base.vae)
    with torch.no_grad():
        next(other.parameters()).add_(0.01)
    assert vae_identity(other) != vae_identity(tiny_base.vae)
    _, encoded = cached_latents(pictures, other, project.latent_cache_dir, device=torch.device("cpu"))
    assert encoded == 2


def test_pictures_off_the_step_are_scaled_to_cover_and_centre_cropped(train_project):
    project = train_project(2, 0)
    odd = project.concept_dir("target") / "t000.png"
    write_picture(odd, (100, 70), seed=4)  # trains at 64x64 (cut to multiples of 64, never upscaled)
    pictures = load_pictures(project, resolve_plan(project))
    picture = next(p for p in pictures if p.picture.path == odd)
    assert picture.bucket == (64, 64)
    pixels, (top, left) = resize_and_crop(picture)
    assert pixels.shape == (3, 64, 64)
    assert pixels.min() >= -1.0 and pixels.max() <= 1.0
    assert top == 0 and left == (91 - 64) // 2  # scaled by 64/70 to 91x64, centre crop
