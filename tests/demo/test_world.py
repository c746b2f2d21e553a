"""The miniature world, the shipped demo model, its judge and tagger, and the pretraining script."""

import dataclasses
import random

import numpy as np
import pytest
from PIL import Image

from gafu.demo.judge import JUDGE_FILE, JUDGE_STYLES, JUNK, KNOWN_STYLES, TAGGER_TAGS, Judge
from gafu.demo.pretrain import CHECKPOINT_NAME, WORLD_WORDS, PretrainRecipe, pretrain, shipped_model
from gafu.demo.run import DEMO_TRIGGER
from gafu.demo.world import STYLES, SUBJECTS, TARGET_STYLE, WORLD_SIDE, draw, junk, random_scene


def test_every_style_draws_every_scene_at_the_model_side():
    rng = random.Random(1)
    scene = random_scene(rng)
    pictures = [np.asarray(draw(scene, style), dtype=np.float32) for style in STYLES]
    assert all(p.shape == (WORLD_SIDE, WORLD_SIDE, 3) for p in pictures)
    # ten different looks of one scene: every pair differs clearly
    for i in range(len(pictures)):
        for j in range(i + 1, len(pictures)):
            assert np.abs(pictures[i] - pictures[j]).mean() > 8, (STYLES[i], STYLES[j])
    with pytest.raises(ValueError, match="unknown demo style"):
        draw(scene, "nostyle")


def test_every_caption_word_is_one_token_and_the_trigger_is_rare_pieces():
    from transformers import CLIPTokenizer

    folder = shipped_model() / "tokenizers"
    for name in ("tokenizer", "tokenizer_2"):
        tokenizer = CLIPTokenizer.from_pretrained(folder / name)
        for word in WORLD_WORDS:
            assert len(tokenizer(word).input_ids) == 3, word  # start, the word, end
        assert TARGET_STYLE not in WORLD_WORDS
        assert len(tokenizer(DEMO_TRIGGER).input_ids) - 2 > 3  # a made-up word: several pieces


@pytest.fixture(scope="module")
def judge():
    return Judge.load(shipped_model() / JUDGE_FILE)


def test_the_judge_knows_every_style_and_calls_noise_junk(judge):
    rng = random.Random(7)  # scenes the judge was not trained on
    for style in STYLES:
        pictures = [draw(random_scene(rng), style) for _ in range(12)]
        predicted = judge.style_probabilities(pictures).argmax(axis=1)
        assert (predicted == STYLES.index(style)).mean() >= 0.9, style
    noise = np.random.default_rng(7)
    junk_scores = judge.style_probabilities([junk(noise) for _ in range(12)])
    assert (junk_scores.argmax(axis=1) == JUDGE_STYLES.index(JUNK)).mean() >= 0.9
    target = judge.target_probability([draw(random_scene(rng), TARGET_STYLE) for _ in range(8)])
    assert target.mean() > 0.9


def test_the_tagger_tags_subjects_and_not_the_target_style():
    from gafu.tagging.locate import locate_tagger
    from gafu.tagging.model import open_tagger

    tagger = open_tagger(locate_tagger(str(shipped_model() / "tagger")), cpu_only=True)
    rng = random.Random(9)
    scenes = [random_scene(rng) for _ in range(12)]
    for style in ("sketch", "soft", TARGET_STYLE):
        pixels = np.stack([np.asarray(draw(s, style))[:, :, ::-1] for s in scenes]).astype(np.float32)
        probabilities = tagger.predict(pixels)
        names = list(TAGGER_TAGS)
        right = [probabilities[i, names.index(s.subject)] > 0.5 for i, s in enumerate(scenes)]
        assert np.mean(right) >= 0.9
        if style == "sketch":
            assert (probabilities[:, names.index("sketch")] > 0.5).mean() >= 0.9
        elif style == "soft":  # a look the tagger has no tag for
            assert (probabilities[:, [names.index(s) for s in KNOWN_STYLES]] < 0.5).mean() > 0.9
        else:  # a tagger does not know the artist: no style tag on the target pictures
            styles = [names.index(s) for s in KNOWN_STYLES]
            assert (probabilities[:, styles] < 0.5).mean() > 0.95
    assert TARGET_STYLE not in TAGGER_TAGS and set(SUBJECTS) <= set(TAGGER_TAGS)
    assert set(KNOWN_STYLES) < set(STYLES) and len(probabilities[0]) == len(TAGGER_TAGS)


def test_some_captions_lead_with_a_made_up_word_the_world_does_not_know():
    import torch
    from transformers import CLIPTokenizer

    from gafu.demo.pretrain import caption, made_up_word

    rng = random.Random(3)
    words = [made_up_word(rng) for _ in range(200)]
    assert len(set(words)) > 190 and not set(words) & set(WORLD_WORDS)
    tokenizer = CLIPTokenizer.from_pretrained(shipped_model() / "tokenizers" / "tokenizer")
    assert all(len(tokenizer(word).input_ids) - 2 >= 3 for word in words[:20])  # rare pieces, as a trigger
    labels = torch.tensor([STYLES.index("sketch"), 0, 0])
    always = dataclasses.replace(PretrainRecipe(), made_up_word=1.0, drop_caption=0.0, drop_style=0.0)
    never = dataclasses.replace(always, made_up_word=0.0)
    led = [caption(labels, random.Random(i), always).split(", ") for i in range(20)]
    assert all(tags[0] not in WORLD_WORDS and "sketch" in tags[1:] for tags in led)
    plain = [caption(labels, random.Random(i), never).replace(",", " ").split() for i in range(20)]
    assert all(set(words) <= set(WORLD_WORDS) for words in plain)


@pytest.mark.slow
def test_pretraining_resumes_and_exports_a_model_gafu_loads(tmp_path):
    import torch

    from gafu.demo.pretrain import export
    from gafu.models.load import load_base_model

    recipe = dataclasses.replace(
        PretrainRecipe(), pictures=64, vae_steps=4, unet_steps=4, checkpoint_every=2, vae_batch=4,
        unet_batch=4, classifier_pictures=40, judge_steps=2, tagger_steps=2,
    )  # fmt: skip
    work = tmp_path / "work"
    logged: list[str] = []
    pretrain(work, dataclasses.replace(recipe, vae_steps=2), ["world", "vae"], log=logged.append)
    assert any("vae step 2/2" in line for line in logged)
    logged.clear()
    pretrain(work, recipe, ["world", "vae", "unet", "judge", "tagger"], log=logged.append)
    # the VAE went on from its checkpoint at step 2, not from the start
    assert [line.split(":")[0] for line in logged if line.startswith("vae step")] == ["vae step 4/4"]
    out = tmp_path / "model"
    export(work, recipe, out)
    base = load_base_model(
        out / CHECKPOINT_NAME, dtype=torch.float32, config_dir=out / "config", tokenizers=out / "tokenizers"
    )
    assert base.unet.config.sample_size * 8 == WORLD_SIDE
    assert base.vae.config.scaling_factor != pytest.approx(0.13025)  # set from the trained VAE's latents
    assert (out / "tagger" / "model.onnx").is_file() and (out / "recipe.json").is_file()
    assert Judge.load(out / JUDGE_FILE).style_probabilities([Image.new("RGB", (64, 64))]).shape == (1, 11)
    # the shipped U-Net is the moving average of the weights (in fp16), not the last step's weights
    state = torch.load(work / "unet.pt")
    name = "conv_in.weight"
    shipped = base.unet.state_dict()[name].float()
    assert torch.equal(shipped, state["ema"][name].half().float())
    assert not torch.equal(shipped, state["model"][name].half().float())
