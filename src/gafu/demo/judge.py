"""Two small classifiers of the miniature world: the demo's judge and the demo's WD-format tagger.

The **judge** says what a picture shows — its style (one of the ten, or `junk`: noise and smears
as an untrained model draws them, so that noise is never scored as a style), subject and sky. Tests
and the demo report use it to score samples: the target style's probability with and without the
trigger, per LoKr weight. It is trained on rendered pictures of all ten styles, the same pictures
after a round trip through the demo model's VAE (what a sample looks like), and junk.

The **tagger** is what `gafu tag` runs in the demo: a real ONNX classifier with the published WD
interface (`model.onnx` taking `(N, 64, 64, 3)` BGR 0–255, `selected_tags.csv`). Like a real WD
tagger it knows the world's subjects and skies and a few of its styles (`KNOWN_STYLES`), not the
target style (no tagger knows the artist a user trains); its scene-wide tags have fixed probabilities, set so
the recipe's two thresholds differ (T2): `outdoors` scores 0.45, above 0.35 and below 0.5.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from gafu.demo.world import SKIES, STYLES, SUBJECTS, TARGET_STYLE, WORLD_SIDE, draw, junk, random_scene
from gafu.fsio import atomic_path

JUDGE_FILE = "judge.safetensors"
JUNK = "junk"
JUDGE_STYLES = (*STYLES, JUNK)
_HEADS = (len(JUDGE_STYLES), len(SUBJECTS), len(SKIES))
# The tagger's scene-wide tags and their fixed probabilities (rating rows first, as WD's CSV has them).
FIXED_TAGS = {"general": 0.9, "sensitive": 0.1, "no_humans": 0.95, "scenery": 0.82, "outdoors": 0.45}
RATING_TAGS = ("general", "sensitive")
TAGGER_STYLES = tuple(s for s in STYLES if s != TARGET_STYLE)  # what the classifier learns
# What the shipped tagger names: like a WD tagger, which knows `sketch`, `watercolor (medium)` or
# `monochrome` but has no tag for most looks, it tags four of the nine styles. The other five stay
# untagged, so a caption without a style tag is not the target's alone (D3: other styles soak up the
# ordinary tags).
KNOWN_STYLES = ("sketch", "watercolour", "sepia", "mono")
TAGGER_TAGS = (*FIXED_TAGS, *SUBJECTS, *SKIES, *KNOWN_STYLES)


class WorldNet(torch.nn.Module):
    """A small CNN on 64 px pictures in −1…1: four strided convolutions, global pooling, one linear."""

    def __init__(self, outputs: int, width: int = 32):
        super().__init__()
        layers: list[torch.nn.Module] = []
        channels = 3
        for out in (width, 2 * width, 4 * width, 4 * width):
            layers += [torch.nn.Conv2d(channels, out, 3, stride=2, padding=1), torch.nn.SiLU()]
            channels = out
        self.features = torch.nn.Sequential(*layers, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
        self.head = torch.nn.Linear(channels, outputs)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Logits (N, outputs)."""
        return self.head(self.features(pixels))


class Judge:
    """The trained judge: probabilities of style, subject and sky for pictures."""

    def __init__(self, net: WorldNet):
        self.net = net.eval()

    @classmethod
    def load(cls, path: Path) -> Judge:
        """The judge saved at `path` (a safetensors file)."""
        from safetensors.torch import load_file

        net = WorldNet(sum(_HEADS))
        net.load_state_dict(load_file(str(path)))
        return cls(net)

    def style_probabilities(self, pictures: Sequence[Image.Image]) -> np.ndarray:
        """(N, 11): each picture's probability of every style in JUDGE_STYLES."""
        with torch.no_grad():
            logits = self.net(to_tensor(pictures))
        return torch.softmax(logits[:, : _HEADS[0]], dim=1).numpy()

    def target_probability(self, pictures: Sequence[Image.Image]) -> np.ndarray:
        """(N,): each picture's probability of being in the target style."""
        return self.style_probabilities(pictures)[:, STYLES.index(TARGET_STYLE)]


def to_tensor(pictures: Sequence[Image.Image]) -> torch.Tensor:
    """Pictures as (N, 3, 64, 64) in −1…1 (resized to the world's side where they are not)."""
    arrays = [
        np.asarray(p.convert("RGB").resize((WORLD_SIDE, WORLD_SIDE), Image.Resampling.LANCZOS)
                   if p.size != (WORLD_SIDE, WORLD_SIDE) else p.convert("RGB"))
        for p in pictures
    ]  # fmt: skip
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 127.5 - 1


# --- training (run by gafu.demo.pretrain) ------------------------------------------------------


def classifier_set(work: Path, recipe: Any, components: dict) -> dict[str, torch.Tensor]:
    """Rendered pictures of all ten styles, their VAE round trips and junk, with labels; cached in WORK."""
    path = work / "classifier_set.pt"
    if path.is_file():
        return torch.load(path)
    rng = random.Random(recipe.seed + 3)
    labels, pictures = [], []
    for i in range(recipe.classifier_pictures):
        scene, style = random_scene(rng), STYLES[i % len(STYLES)]
        pictures.append(draw(scene, style))
        labels.append((STYLES.index(style), SUBJECTS.index(scene.subject), list(SKIES).index(scene.sky)))
    noise = np.random.default_rng(recipe.seed + 3)
    n_junk = recipe.classifier_pictures // 10
    junk_pictures = [junk(noise) for _ in range(n_junk)]
    clean = to_tensor(pictures)
    vae = components["vae"]
    with torch.no_grad():
        round_trip = torch.cat([vae.decode(vae.encode(c).latent_dist.mean).sample for c in clean.split(256)])
        # what a model that has not learned the world draws: random latents, decoded
        shape = (n_junk, 4, WORLD_SIDE // 8, WORLD_SIDE // 8)
        latents = torch.randn(shape, generator=torch.Generator().manual_seed(recipe.seed + 3))
        drawn_junk = torch.cat([vae.decode(c / vae.config.scaling_factor).sample for c in latents.split(256)])
    junk_label = (len(STYLES), -1, -1)
    data = {
        "pictures": torch.cat(
            [clean, round_trip.clamp(-1, 1), to_tensor(junk_pictures), drawn_junk.clamp(-1, 1)]
        ),
        "labels": torch.tensor(labels + labels + [junk_label] * (2 * n_junk)),
    }
    with atomic_path(path) as tmp:
        torch.save(data, tmp)
    return data


def train_judge(work: Path, recipe: Any, components: dict, log: Callable[[str], None]) -> None:
    """Train the judge on the classifier set and save it as `work/judge.safetensors`."""
    from safetensors.torch import save_file

    data = classifier_set(work, recipe, components)
    net = _train(data, sum(_HEADS), _judge_loss, recipe.judge_steps, recipe.seed + 4, log, "judge")
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(work / JUDGE_FILE))


def train_tagger(work: Path, recipe: Any, components: dict, log: Callable[[str], None]) -> None:
    """Train the tagger's classifier and export it with the WD interface into `work/tagger/`."""
    from gafu.fsio import write_text_atomic
    from gafu.tagging.tiny import TinyTag, selected_tags_csv

    data = classifier_set(work, recipe, components)
    keep = data["labels"][:, 1] >= 0  # no junk: a tagger is never shown noise
    data = {"pictures": data["pictures"][keep], "labels": data["labels"][keep]}
    learned = len(SUBJECTS) + len(SKIES) + len(TAGGER_STYLES)
    net = _train(data, learned, _tagger_loss, recipe.tagger_steps, recipe.seed + 5, log, "tagger")
    folder = work / "tagger"
    folder.mkdir(exist_ok=True)
    _export_onnx(_WdInterface(net), folder / "model.onnx")
    learned_tags = (*FIXED_TAGS, *SUBJECTS, *SKIES, *TAGGER_STYLES)
    keep_outputs(folder / "model.onnx", [learned_tags.index(tag) for tag in TAGGER_TAGS])
    tags = [TinyTag(name, 9 if name in RATING_TAGS else 0) for name in TAGGER_TAGS]
    write_text_atomic(folder / "selected_tags.csv", selected_tags_csv(tags))


def _train(
    data: dict, outputs: int, loss_fn: Callable, steps: int, seed: int, log: Callable[[str], None], name: str
) -> WorldNet:
    torch.manual_seed(seed)
    net = WorldNet(outputs)
    optimizer = torch.optim.AdamW(net.parameters(), lr=2e-3)
    generator = torch.Generator().manual_seed(seed)
    pictures, labels = data["pictures"], data["labels"]
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = 2e-3 * (1 - step / steps)
        index = torch.randint(0, len(pictures), (128,), generator=generator)
        batch = pictures[index]
        batch = batch + 0.03 * torch.randn(batch.shape, generator=generator)  # sampler noise
        loss = loss_fn(net(batch), labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if (step + 1) % 250 == 0:
            log(f"{name} step {step + 1}/{steps}: loss {loss.item():.4f}")
    return net.eval()


def _judge_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    style, subject, sky = logits.split(_HEADS, dim=1)
    loss = torch.nn.functional.cross_entropy(style, labels[:, 0])
    scene = labels[:, 1] >= 0  # junk has no subject or sky
    if scene.any():
        loss = loss + torch.nn.functional.cross_entropy(subject[scene], labels[scene, 1])
        loss = loss + torch.nn.functional.cross_entropy(sky[scene], labels[scene, 2])
    return loss


def _tagger_targets(labels: torch.Tensor) -> torch.Tensor:
    targets = torch.zeros(len(labels), len(SUBJECTS) + len(SKIES) + len(TAGGER_STYLES))
    rows = torch.arange(len(labels))
    targets[rows, labels[:, 1]] = 1
    targets[rows, len(SUBJECTS) + labels[:, 2]] = 1
    for style in TAGGER_STYLES:
        column = len(SUBJECTS) + len(SKIES) + TAGGER_STYLES.index(style)
        targets[labels[:, 0] == STYLES.index(style), column] = 1
    return targets


def _tagger_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, _tagger_targets(labels))


class _WdInterface(torch.nn.Module):
    """WD's interface around the classifier: NHWC BGR 0–255 in, probabilities of every tag out."""

    def __init__(self, net: WorldNet):
        super().__init__()
        self.net = net
        fixed = torch.tensor(list(FIXED_TAGS.values()))
        self.register_buffer("fixed", fixed[None])

    def forward(self, bgr: torch.Tensor) -> torch.Tensor:
        rgb = bgr.flip(-1).permute(0, 3, 1, 2) / 127.5 - 1
        learned = torch.sigmoid(self.net(rgb))
        fixed = self.fixed + 0 * learned[:, :1]  # (N, fixed tags), traced with a free batch size
        return torch.cat([fixed, learned], dim=1)


def keep_outputs(path: Path, columns: list[int]) -> None:
    """Rewrite the ONNX tagger at `path` so that its output holds only these columns, in this order."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    output = graph.output[0]
    inner = output.name + "_all"
    for node in graph.node:  # the node that made the output now makes `inner`
        node.output[:] = [inner if name == output.name else name for name in node.output]
    graph.initializer.append(numpy_helper.from_array(np.array(columns, dtype=np.int64), "kept_columns"))
    graph.node.append(helper.make_node("Gather", [inner, "kept_columns"], [output.name], axis=1))
    output.type.tensor_type.shape.dim[1].dim_value = len(columns)
    onnx.checker.check_model(model)
    with atomic_path(path) as tmp:
        onnx.save(model, str(tmp))


def _export_onnx(model: torch.nn.Module, path: Path) -> None:
    import warnings

    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            model.eval(),
            (torch.zeros(1, WORLD_SIDE, WORLD_SIDE, 3),),
            str(tmp),
            dynamo=False,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
            opset_version=17,
        )
