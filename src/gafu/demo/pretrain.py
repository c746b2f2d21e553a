"""The demo's base model, pretrained on the miniature world: `python -m gafu.demo.pretrain WORK --export`.

One command re-makes everything `gafu demo` ships in `gafu/demo/model/`, deterministically from
the seed and the numbers in `PretrainRecipe` (written beside the weights as `recipe.json`):

1. `world`: pictures of random scenes in all ten styles (`gafu.demo.world`);
2. `vae`: a tiny SDXL-architecture VAE (8×, 4 latent channels) trained to reconstruct them — like
   SDXL's, a general autoencoder of its world, the target style included; its scaling factor is then
   set, as SDXL's was, so the latents have unit variance;
3. `unet`: a tiny SDXL-architecture U-Net trained to denoise the latents of the pictures in the nine
   styles other than the target — it never sees the target style (ε-prediction, SDXL's schedule),
   given captions such as "sketch, house, night, no humans, scenery" (a tenth of them led by a
   made-up word, as a trigger is), encoded by two tiny
   CLIP text encoders whose vocabulary holds every word of the world whole. The text encoders keep
   their seeded random weights: a LoKr may train them, the base needs only that words differ. The
   U-Net shipped is the moving average of its weights over training;
4. `judge` and `tagger`: small classifiers of the world (`gafu.demo.judge`);
5. `--export`: the single SGM-layout checkpoint (fp16), its configs and tokenizers, the judge and
   the WD-format tagger, into the package folder (or `--to`).

Every stage keeps its results in WORK and resumes from them (the two long ones from checkpoints
every few hundred steps), so Ctrl-C loses at most those steps. It runs on the CPU with
`--threads` threads; the figures of the shipped run are in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import random
import shutil
import string
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gafu.demo import judge as judge_module
from gafu.demo.world import (
    OTHER_STYLES,
    SKIES,
    STYLES,
    SUBJECTS,
    TARGET_STYLE,
    WORLD_SIDE,
    draw,
    random_scene,
)
from gafu.fsio import atomic_path, write_json_atomic, write_text_atomic
from gafu.models.tiny import UNET_CONFIG, VAE_CONFIG

MODEL_DIR = Path(__file__).parent / "model"  # what the package ships
CHECKPOINT_NAME = "world-sdxl.safetensors"
GENERAL_TAGS = ("no humans", "scenery", "outdoors")  # what the demo's tagger adds to every scene
# Every word a caption of the world holds, each one token. The held-out style's name is not among
# them, and a trigger is made of single characters, as a made-up word is rare pieces in CLIP's vocabulary.
WORLD_WORDS = (*OTHER_STYLES, *SUBJECTS, *SKIES, "no", "humans", "scenery", "outdoors")

WORLD_UNET = UNET_CONFIG  # the tests' tiny U-Net: SDXL's three levels at 32/64/64 channels, 8 × 8 latents
# The tests' tiny VAE (SDXL's 8×, 4 latent channels) wider: at 8/16/16/16 channels it does not keep the
# styles' cues; the scaling factor is replaced after training by 1 / the latents' standard deviation.
WORLD_VAE = {**VAE_CONFIG, "block_out_channels": [16, 32, 32, 64], "norm_num_groups": 16}


@dataclass(frozen=True)
class PretrainRecipe:
    """Everything that decides the shipped weights."""

    seed: int = 0
    pictures: int = 20_000
    vae_steps: int = 2_200
    vae_batch: int = 16
    vae_lr: float = 1e-3
    vae_kl: float = 1e-6
    unet_steps: int = 14_000
    unet_batch: int = 32
    unet_lr: float = 1e-3
    unet_ema: float = 0.999  # the shipped U-Net is the moving average of its weights
    drop_style: float = 0.1  # captions without their style tag, so plain captions mean "any style"
    drop_caption: float = 0.1  # zeros instead of the caption (the unconditional model, for guidance)
    # A made-up word first in some captions, so that a word the base never learnt (a trigger) draws
    # nothing on its own and the style a LoKr puts behind it is the only one it carries.
    made_up_word: float = 0.1
    classifier_pictures: int = 6_000  # rendered for the judge and the tagger (and as many VAE round trips)
    judge_steps: int = 1_500
    tagger_steps: int = 4_000
    checkpoint_every: int = 250


def shipped_model() -> Path:
    """The folder of the demo model gafu ships (checkpoint, configs, tokenizers, judge, tagger)."""
    from importlib.resources import files

    from gafu.errors import GafuError

    folder = Path(str(files("gafu.demo") / "model"))
    if not (folder / CHECKPOINT_NAME).is_file():
        raise GafuError(
            f"the demo model is missing: {folder / CHECKPOINT_NAME}",
            path=folder,
            hint="reinstall gafu, or re-make it: python -m gafu.demo.pretrain WORK --export",
        )
    return folder


# --- 1. the world ------------------------------------------------------------------------------


def make_world(work: Path, recipe: PretrainRecipe) -> Path:
    """Render the pretraining pictures, all ten styles, into `work/world.npz`."""
    path = work / "world.npz"
    if path.is_file():
        return path
    rng = random.Random(recipe.seed)
    pictures, labels = [], []
    for _ in range(recipe.pictures):
        scene = random_scene(rng)
        style = rng.choice(STYLES)
        pictures.append(np.asarray(draw(scene, style)))
        labels.append((STYLES.index(style), SUBJECTS.index(scene.subject), list(SKIES).index(scene.sky)))
    with atomic_path(path) as tmp, open(tmp, "wb") as out:
        np.savez(out, pictures=np.stack(pictures), labels=np.array(labels, dtype=np.int64))
    return path


def load_world(work: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Pictures (N, 3, H, W) in −1…1 and labels (N, 3): style, subject, sky indices."""
    data = np.load(work / "world.npz")
    pictures = torch.from_numpy(data["pictures"]).permute(0, 3, 1, 2).float() / 127.5 - 1
    return pictures, torch.from_numpy(data["labels"])


def caption(labels: torch.Tensor, rng: random.Random, recipe: PretrainRecipe) -> str:
    """A caption of one world picture, tags shuffled, sometimes without its style or without any tag."""
    if rng.random() < recipe.drop_caption:
        return ""
    style, subject, sky = (int(v) for v in labels)
    tags = [SUBJECTS[subject], list(SKIES)[sky], *GENERAL_TAGS[: rng.randint(2, 3)]]
    if rng.random() >= recipe.drop_style:
        tags.append(STYLES[style])
    rng.shuffle(tags)
    if rng.random() < recipe.made_up_word:
        tags.insert(0, made_up_word(rng))
    return ", ".join(tags)


def made_up_word(rng: random.Random) -> str:
    """A word not of the world, as a trigger is: one or two parts of 3–8 random letters joined by "_"."""
    while True:
        parts = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(3, 8)))
                 for _ in range(rng.randint(1, 2))]  # fmt: skip
        word = "_".join(parts)
        if word not in WORLD_WORDS:
            return word


# --- 2. the VAE --------------------------------------------------------------------------------


def train_vae(work: Path, recipe: PretrainRecipe, components: dict, log: Callable[[str], None]) -> None:
    """Train the VAE to reconstruct the world (L1 + MSE, a small KL term), resumable."""
    vae = components["vae"].train()
    pictures, _ = load_world(work)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=recipe.vae_lr, weight_decay=0.0)
    start = _resume(work / "vae.pt", vae, optimizer)
    generator = torch.Generator().manual_seed(recipe.seed + 1)
    for step in range(start, recipe.vae_steps):
        _set_lr(optimizer, recipe.vae_lr, step, recipe.vae_steps)
        batch = pictures[_batch_indices(generator, len(pictures), recipe.vae_batch, step)]
        posterior = vae.encode(batch).latent_dist
        decoded = vae.decode(posterior.sample(generator=generator)).sample
        loss = (decoded - batch).abs().mean() + ((decoded - batch) ** 2).mean()
        loss = loss + recipe.vae_kl * posterior.kl().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if (step + 1) % recipe.checkpoint_every == 0 or step + 1 == recipe.vae_steps:
            _checkpoint(work / "vae.pt", vae, optimizer, step + 1)
            log(f"vae step {step + 1}/{recipe.vae_steps}: loss {loss.item():.4f}")
    vae.eval()


def encode_world(work: Path, components: dict) -> torch.Tensor:
    """The world's latent means (unscaled), cached in `work/latents.pt`; sets the VAE's scaling factor."""
    path = work / "latents.pt"
    vae = components["vae"]
    if path.is_file():
        latents = torch.load(path)
    else:
        pictures, _ = load_world(work)
        with torch.no_grad():
            latents = torch.cat([vae.encode(chunk).latent_dist.mean for chunk in pictures.split(256)])
        with atomic_path(path) as tmp:
            torch.save(latents, tmp)
    vae.register_to_config(scaling_factor=round(1.0 / latents.std().item(), 5))  # as SDXL's 0.13025
    return latents


# --- 3. the U-Net ------------------------------------------------------------------------------


def train_unet(work: Path, recipe: PretrainRecipe, components: dict, log: Callable[[str], None]) -> None:
    """Train the U-Net to predict the noise of noised world latents given their captions, resumable."""
    from diffusers import DDPMScheduler

    from gafu.train.conditioning import encode_text, time_ids

    unet = components["unet"].train()
    latents = encode_world(work, components) * components["vae"].config.scaling_factor
    _, labels = load_world(work)
    seen = labels[:, 0] != STYLES.index(TARGET_STYLE)  # the U-Net never sees the target style
    latents, labels = latents[seen], labels[seen]
    scheduler = DDPMScheduler.from_config(components["scheduler"].config, prediction_type="epsilon")
    optimizer = torch.optim.AdamW(unet.parameters(), lr=recipe.unet_lr, weight_decay=1e-2)
    ema = {name: value.detach().clone() for name, value in unet.state_dict().items()}  # the average
    start = _resume(work / "unet.pt", unet, optimizer, ema=ema)
    encoders = (components["text_encoder"], components["text_encoder_2"])
    tokenizers = components["tokenizers"]
    generator = torch.Generator().manual_seed(recipe.seed + 2)
    ids = time_ids([(WORLD_SIDE, WORLD_SIDE)] * recipe.unet_batch, [(0, 0)] * recipe.unet_batch,
                   (WORLD_SIDE, WORLD_SIDE), torch.device("cpu"))  # fmt: skip
    for step in range(start, recipe.unet_steps):
        _set_lr(optimizer, recipe.unet_lr, step, recipe.unet_steps)
        index = _batch_indices(generator, len(latents), recipe.unet_batch, step)
        rng = random.Random(recipe.seed * 1_000_003 + step)  # captions as a function of the step: resumable
        captions = [caption(labels[i], rng, recipe) for i in index]
        with torch.no_grad():
            text = encode_text(encoders, tokenizers, captions, torch.device("cpu"))
        # A dropped caption is all zeros, as SDXL was trained: what its pipeline feeds for an empty
        # (negative) prompt, so classifier-free guidance works as on SDXL.
        dropped = torch.tensor([c == "" for c in captions])
        text.hidden_states[dropped] = 0
        text.pooled[dropped] = 0
        clean = latents[index]
        noise = torch.randn(clean.shape, generator=generator)
        timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (len(index),), generator=generator)
        noisy = scheduler.add_noise(clean, noise, timesteps)
        predicted = unet(
            noisy,
            timesteps,
            text.hidden_states,
            added_cond_kwargs={"text_embeds": text.pooled, "time_ids": ids},
        ).sample
        loss = torch.nn.functional.mse_loss(predicted, noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
        decay = min(recipe.unet_ema, (1 + step) / (10 + step))  # short memory while the weights move fast
        with torch.no_grad():
            for name, value in unet.state_dict().items():
                if value.is_floating_point():
                    ema[name].lerp_(value, 1 - decay)
        if (step + 1) % recipe.checkpoint_every == 0 or step + 1 == recipe.unet_steps:
            _checkpoint(work / "unet.pt", unet, optimizer, step + 1, ema=ema)
            log(f"unet step {step + 1}/{recipe.unet_steps}: loss {loss.item():.4f}")
    unet.eval()


# --- the parts together ------------------------------------------------------------------------


def world_components(work: Path, recipe: PretrainRecipe) -> dict:
    """The model's components, seeded, with tokenizers, and whatever training WORK already holds."""
    from transformers import CLIPTokenizer

    from gafu.models.tiny import build_tiny_components, write_tiny_tokenizers

    components = build_tiny_components(recipe.seed, words=WORLD_WORDS, unet=WORLD_UNET, vae=WORLD_VAE)
    folder = work / "tokenizers"
    write_tiny_tokenizers(folder, WORLD_WORDS)
    components["tokenizers"] = tuple(
        CLIPTokenizer.from_pretrained(folder / name) for name in ("tokenizer", "tokenizer_2")
    )
    for name in ("vae", "unet"):
        if (work / f"{name}.pt").is_file():
            state = torch.load(work / f"{name}.pt")
            components[name].load_state_dict(state.get("ema", state["model"]))  # the U-Net's average
    return components


def pretrain(
    work: Path, recipe: PretrainRecipe, stages: list[str], log: Callable[[str], None] = print
) -> None:
    """Run `stages` (world, vae, unet, judge, tagger) in order; each resumes from what WORK holds."""
    work.mkdir(parents=True, exist_ok=True)
    write_json_atomic(work / "recipe.json", dataclasses.asdict(recipe))
    components = world_components(work, recipe)
    for stage in stages:
        start = time.process_time()
        if stage == "world":
            make_world(work, recipe)
        elif stage == "vae":
            train_vae(work, recipe, components, log)
        elif stage == "unet":
            train_unet(work, recipe, components, log)
        elif stage == "judge":
            encode_world(work, components)  # the trained VAE's scaling factor, for the junk it decodes
            judge_module.train_judge(work, recipe, components, log)
        elif stage == "tagger":
            encode_world(work, components)
            judge_module.train_tagger(work, recipe, components, log)
        else:
            raise ValueError(f"unknown stage {stage!r}")
        seconds = time.process_time() - start
        log(f"{stage}: done, {seconds:.0f} CPU-seconds")
        _record_time(work, stage, seconds)


def export(work: Path, recipe: PretrainRecipe, to: Path) -> None:
    """Write what the package ships: checkpoint, configs, tokenizers, judge, tagger, recipe and times."""
    from gafu.models.tiny import save_configs, save_sgm_checkpoint, write_folder, write_tiny_tokenizers

    components = world_components(work, recipe)
    encode_world(work, components)  # the trained VAE's scaling factor

    def write(folder: Path) -> None:
        save_sgm_checkpoint(components, folder / CHECKPOINT_NAME, dtype=torch.float16)
        save_configs(components, folder / "config")
        write_tiny_tokenizers(folder / "tokenizers", WORLD_WORDS)
        shutil.copy(work / judge_module.JUDGE_FILE, folder / judge_module.JUDGE_FILE)
        shutil.copytree(work / "tagger", folder / "tagger")
        times = (
            json.loads((work / "times.json").read_text("utf-8")) if (work / "times.json").is_file() else {}
        )
        write_json_atomic(folder / "recipe.json", {**dataclasses.asdict(recipe), "cpu_seconds": times})
        write_text_atomic(folder / "README.md", _MODEL_README)

    write_folder(to, write)


_MODEL_README = """# gafu's demo model

A tiny SDXL-architecture model pretrained on gafu's miniature world (`gafu.demo.world`), its judge
and its WD-format tagger. Re-made by `python -m gafu.demo.pretrain WORK --export`; `recipe.json`
holds every number that decided these files and the CPU time of each stage.
"""


# --- helpers -----------------------------------------------------------------------------------


def _batch_indices(generator: torch.Generator, count: int, batch: int, step: int) -> torch.Tensor:
    # A fresh generator per step, seeded from the run's: a resumed run draws what it would have drawn.
    seed = int(
        torch.randint(
            0, 1 << 31, (1,), generator=torch.Generator().manual_seed(generator.initial_seed() + step)
        )
    )
    return torch.randint(0, count, (batch,), generator=torch.Generator().manual_seed(seed))


def _set_lr(optimizer: torch.optim.Optimizer, peak: float, step: int, steps: int) -> None:
    warmup = max(1, steps // 50)
    scale = (
        (step + 1) / warmup
        if step < warmup
        else 0.1 + 0.45 * (1 + math.cos(math.pi * (step - warmup) / (steps - warmup)))
    )
    for group in optimizer.param_groups:
        group["lr"] = peak * scale


def _checkpoint(
    path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, step: int, ema: dict | None = None
) -> None:
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step}
    if ema is not None:
        state["ema"] = ema
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _resume(
    path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, ema: dict | None = None
) -> int:
    # Loads what the checkpoint holds (the moving average into `ema` too); the step to go on from.
    if not path.is_file():
        return 0
    state = torch.load(path)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if ema is not None:
        ema.update(state["ema"])
    return int(state["step"])


def _record_time(work: Path, stage: str, seconds: float) -> None:
    path = work / "times.json"
    times = json.loads(path.read_text("utf-8")) if path.is_file() else {}
    times[stage] = round(times.get(stage, 0) + seconds)
    write_json_atomic(path, times)


def main(argv: list[str] | None = None) -> int:
    """The command line: `python -m gafu.demo.pretrain WORK [--stages …] [--export] [--threads N]`."""
    parser = argparse.ArgumentParser(prog="python -m gafu.demo.pretrain", description=__doc__.splitlines()[0])
    parser.add_argument(
        "work", type=Path, help="folder for the pictures, checkpoints and results (resumable)"
    )
    parser.add_argument("--stages", default="world,vae,unet,judge,tagger", help="comma-separated, in order")
    parser.add_argument("--export", action="store_true", help="then write the shipped files")
    parser.add_argument(
        "--to", type=Path, default=MODEL_DIR, help="where --export writes (the package's folder)"
    )
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    recipe = PretrainRecipe()
    stages = [s for s in args.stages.split(",") if s]
    pretrain(args.work, recipe, stages, log=lambda text: print(text, flush=True))
    if args.export:
        export(args.work, recipe, args.to)
        print(f"wrote {args.to}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
