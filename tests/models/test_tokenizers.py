"""SDXL's tokenizers with CLIP's real vocabulary: token ids, where they come from, and the check.

The vocabulary is `bpe_simple_vocab_16e6.txt.gz` as the openai-clip package ships it (a test
dependency); its ids are checked against CLIP's published ones and OpenAI's own tokenizer.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from gafu.errors import GafuError
from gafu.models.tokenizers import SDXL_BASE_REPO, clip_bpe_file, load_tokenizers
from gafu.train.conditioning import token_ids
from tests.conftest import hub_cache_snapshot

SDXL_ENCODERS = (
    SimpleNamespace(config=SimpleNamespace(vocab_size=49408, max_position_embeddings=77)),  # CLIP ViT-L
    SimpleNamespace(config=SimpleNamespace(vocab_size=49408, max_position_embeddings=77)),  # OpenCLIP bigG
)
A_PHOTO_OF_A_CAT = [49406, 320, 1125, 539, 320, 2368, 49407]  # CLIP's ids, as published with CLIP
CAPTIONS = [
    "mzh_style, 1girl, long hair, :d, ^_^, looking at viewer, (smile:1.2), white dress",
    "Hello   World,  it's 3.5x bigger",
    "café Ñandú 絵 ñ, 😀",
]


def write_folder(root: Path, files: dict[str, bytes], *, keep: tuple[str, ...] | None = None) -> Path:
    for name, data in files.items():
        if keep is None or name.rsplit("/", 1)[1] in keep:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(data)
    return root


@pytest.fixture
def sdxl_tokenizers_in_hub_cache(sdxl_tokenizer_files):
    """SDXL base's tokenizer folders in the hub cache, as a download lays them out (removed afterwards)."""
    snapshot = hub_cache_snapshot(SDXL_BASE_REPO, sdxl_tokenizer_files)
    yield snapshot
    shutil.rmtree(snapshot.parents[1])


def test_a_photo_of_a_cat_gets_clips_ids_and_sdxls_padding(tmp_path, sdxl_tokenizer_files):
    loaded = load_tokenizers(
        explicit=write_folder(tmp_path, sdxl_tokenizer_files), candidates=[], text_encoders=SDXL_ENCODERS
    )
    first, second = (
        token_ids(t, ["a photo of a cat"])[0].tolist() for t in (loaded.tokenizer, loaded.tokenizer_2)
    )
    assert first == A_PHOTO_OF_A_CAT + [49407] * 70  # CLIP ViT-L pads with <|endoftext|>
    assert second == A_PHOTO_OF_A_CAT + [0] * 70  # OpenCLIP bigG pads with "!"
    assert len(loaded.tokenizer) == len(loaded.tokenizer_2) == 49408
    assert loaded.notes == []


def _openai_tokenizer():
    """OpenAI's own CLIP tokenizer, from openai-clip (its module alone: the package needs torchvision)."""
    path = clip_bpe_file().parent / "simple_tokenizer.py"
    spec = importlib.util.spec_from_file_location("openai_clip_simple_tokenizer", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SimpleTokenizer()


def test_ids_are_openai_clips_own(tmp_path, sdxl_tokenizer_files):
    loaded = load_tokenizers(explicit=write_folder(tmp_path, sdxl_tokenizer_files), candidates=[])
    reference = _openai_tokenizer()
    for caption in CAPTIONS:
        expected = [49406, *reference.encode(caption), 49407]
        assert loaded.tokenizer(caption).input_ids == expected, caption
        # The second tokenizer's pad token "!" is special: a "!" in a caption becomes id 0 there, as
        # with SDXL's own tokenizer_2 in diffusers and kohya; these captions have none.
        assert loaded.tokenizer_2(caption).input_ids == expected, caption


def test_vocab_and_merges_alone_get_sdxls_settings_and_say_so(tmp_path, sdxl_tokenizer_files):
    whole = load_tokenizers(explicit=write_folder(tmp_path / "whole", sdxl_tokenizer_files), candidates=[])
    bare_folder = write_folder(tmp_path / "bare", sdxl_tokenizer_files, keep=("vocab.json", "merges.txt"))
    bare = load_tokenizers(explicit=bare_folder, candidates=[], text_encoders=SDXL_ENCODERS)
    for name, tokenizer, reference in zip(
        ("tokenizer", "tokenizer_2"), bare.tokenizers, whole.tokenizers, strict=True
    ):
        assert tokenizer.model_max_length == 77  # transformers alone: 1e30, and token_ids overflows
        assert token_ids(tokenizer, CAPTIONS).tolist() == token_ids(reference, CAPTIONS).tolist(), name
    assert len(bare.notes) == 2
    assert str(bare_folder / "tokenizer_2") in bare.notes[1] and "padding with '!'" in bare.notes[1]


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        (
            {"pad_token": "<|endoftext|>", "model_max_length": 77},
            r"padding '<\|endoftext\|>' \(49407\) \(SDXL's: '!' \(0\)\)",
        ),
        ({"pad_token": "!"}, r"window 1e\+30 \(SDXL's: 77\)"),
        ({"pad_token": "!", "model_max_length": 77, "bos_token": "<|endoftext|>"}, r"BOS '<\|endoftext\|>'"),
    ],
)
def test_settings_training_cannot_use_are_refused_naming_the_folder(
    tmp_path, sdxl_tokenizer_files, settings, problem
):
    folder = write_folder(tmp_path, sdxl_tokenizer_files)
    (folder / "tokenizer_2" / "special_tokens_map.json").unlink()
    config = {"tokenizer_class": "CLIPTokenizer", "do_lower_case": True, **settings}
    (folder / "tokenizer_2" / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(GafuError, match=problem) as error:
        load_tokenizers(explicit=folder, candidates=[], text_encoders=SDXL_ENCODERS)
    message = str(error.value)
    assert f"tokenizer in {folder / 'tokenizer_2'} does not fit SDXL's second text encoder" in message
    assert "\n" not in message and "hf download" in message


def test_a_vocabulary_that_does_not_fit_the_text_encoders_is_refused(tmp_path, tiny_model):
    with pytest.raises(
        GafuError, match=r"tokenizer in .*tokenizer does not fit.*vocabulary \d+ \(SDXL's: 49408\)"
    ):
        load_tokenizers(explicit=tiny_model.diffusers_dir, candidates=[], text_encoders=SDXL_ENCODERS)


def test_the_hub_cache_as_a_download_lays_it_out(sdxl_tokenizers_in_hub_cache):
    assert (sdxl_tokenizers_in_hub_cache / "tokenizer" / "vocab.json").resolve().parent.name == "blobs" or (
        not (sdxl_tokenizers_in_hub_cache / "tokenizer" / "vocab.json").is_symlink()
    )
    loaded = load_tokenizers(explicit=None, candidates=[], text_encoders=SDXL_ENCODERS)
    assert loaded.source == str(sdxl_tokenizers_in_hub_cache) and loaded.notes == []
    assert token_ids(loaded.tokenizer_2, ["a photo of a cat"])[0, :8].tolist() == [*A_PHOTO_OF_A_CAT, 0]


def test_a_hub_cache_holding_only_the_vocabularies_gets_sdxls_settings(sdxl_tokenizer_files):
    vocabularies = {k: v for k, v in sdxl_tokenizer_files.items() if k.endswith(("vocab.json", "merges.txt"))}
    snapshot = hub_cache_snapshot(SDXL_BASE_REPO, vocabularies)
    try:
        loaded = load_tokenizers(explicit=None, candidates=[], text_encoders=SDXL_ENCODERS)
    finally:
        shutil.rmtree(snapshot.parents[1])
    assert loaded.source == str(snapshot) and len(loaded.notes) == 2
    assert loaded.tokenizer_2.pad_token_id == 0 and loaded.tokenizer.model_max_length == 77


def test_without_any_folder_they_are_built_from_clips_bpe_file(tmp_path, sdxl_tokenizer_files):
    built = load_tokenizers(explicit=None, candidates=[tmp_path], text_encoders=SDXL_ENCODERS)
    assert "openai-clip" in built.source and "built from CLIP's BPE vocabulary" in built.notes[0]
    reference = load_tokenizers(explicit=write_folder(tmp_path / "sdxl", sdxl_tokenizer_files), candidates=[])
    for mine, theirs in zip(built.tokenizers, reference.tokenizers, strict=True):
        assert token_ids(mine, CAPTIONS).tolist() == token_ids(theirs, CAPTIONS).tolist()
