"""The latent cache: encoded once in fp32, keyed by content + bucket + VAE, written atomically.

Pictures not prepared at their bucket are made as kohya's sd-scripts (48d368f) makes them; its
rules are written out below with the file and lines they come from.
"""

import copy
import random

import numpy as np
import torch
from PIL import Image

from gafu.images import resize_area
from gafu.plan import resolve_plan
from gafu.plan.dataset import bucket_size
from gafu.train.data import load_pictures
from gafu.train.latents import cached_latents, crop_top_left, resize_and_crop, vae_identity
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


def _kohya_crop_top_left(bucket, size):
    """BucketManager.get_crop_ltrb (train_util.py lines 349-366), as (top, left) in the time ids
    (train_util.py lines 1686 and 1692)."""
    bucket_ar = bucket[0] / bucket[1]
    image_ar = size[0] / size[1]
    if bucket_ar > image_ar:
        resized_width = bucket[1] * image_ar
        resized_height = bucket[1]
    else:
        resized_width = bucket[0]
        resized_height = bucket[0] / image_ar
    crop_left = (bucket[0] - resized_width) // 2
    crop_top = (bucket[1] - resized_height) // 2
    return int(crop_top), int(crop_left)


def _pixels(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image, dtype=np.float32)).permute(2, 0, 1) / 127.5 - 1.0


def test_pictures_off_their_bucket_are_resized_and_trimmed_as_sd_scripts(train_project):
    project = train_project(2, 0)  # [train] resolution 512
    big = write_picture(project.concept_dir("target") / "t000.png", (700, 500), seed=4)
    small = write_picture(project.concept_dir("target") / "t001.png", (600, 330), seed=5)
    pictures = {p.picture.path: p for p in load_pictures(project, resolve_plan(project))}
    # 700 × 500 is above 512²: select_bucket (train_util.py lines 309-341) scales it to the area,
    # rounding the height (384; the width 606 → 576 would give 576 × 384, aspect 1.5 against
    # 1.4): 538 × 384, bucket 512 × 384. Shrunk with INTER_AREA (library/utils.py lines 245-261),
    # then trimmed around the centre (train_util.py lines 2976-2985): 13 px off the left.
    picture = pictures[big]
    assert (picture.resized, picture.bucket) == ((538, 384), (512, 384))
    pixels, crop = resize_and_crop(picture)
    expected = resize_area(Image.open(big).convert("RGB"), (538, 384)).crop((13, 0, 525, 384))
    assert torch.equal(pixels, _pixels(expected))
    assert crop == _kohya_crop_top_left((512, 384), (700, 500)) == (9, 0)  # not the trim's (0, 13)
    # 600 × 330 is within 512²: not resized, only trimmed to 576 × 320 (12 px left, 5 px top).
    picture = pictures[small]
    assert (picture.resized, picture.bucket) == ((600, 330), (576, 320))
    pixels, crop = resize_and_crop(picture)
    assert torch.equal(pixels, _pixels(Image.open(small).convert("RGB").crop((12, 5, 588, 325))))
    assert crop == _kohya_crop_top_left((576, 320), (600, 330)) == (1, 0)


def test_crop_time_ids_are_sd_scripts_for_any_size():
    rng = random.Random(11)
    for _ in range(6000):
        size = (rng.randint(256, 4096), rng.randint(256, 4096))
        bucket = bucket_size(*size, rng.choice((1024, 1536)))
        assert crop_top_left(size, bucket) == _kohya_crop_top_left(bucket, size), (size, bucket)
    assert crop_top_left((1024, 1536), (1024, 1536)) == (0, 0)  # a prepared picture: no crop
