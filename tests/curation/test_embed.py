"""The optional image model (D1): a CLIP vision encoder loaded by transformers, from a folder or the hub."""

import numpy as np
import pytest

from gafu.curation.embed import embed_pictures, load_embedder
from gafu.errors import GafuError
from tests.conftest import fake_hub_cache
from tests.drawings import STYLES, draw

FILES = ("config.json", "model.safetensors", "preprocessor_config.json")


def test_a_folder_and_the_same_model_from_the_hub_cache_give_the_same_embeddings(tiny_clip):
    pictures = [draw(STYLES[0], seed=i, size=(96, 80)) for i in range(3)]
    from_folder = load_embedder(str(tiny_clip))
    fake_hub_cache("someone/tiny-clip", tiny_clip, FILES)  # as huggingface_hub lays out a download
    from_hub = load_embedder("someone/tiny-clip")  # HF_HUB_OFFLINE=1: read from the cache only
    assert from_folder.identity == from_hub.identity
    a, b = embed_pictures(from_folder, pictures), embed_pictures(from_hub, pictures)
    assert a.shape == (3, 32)  # the tiny model's hidden size
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert not np.allclose(a[0], a[1])  # different pictures, different embeddings


def test_a_model_that_is_not_there_is_a_one_line_error(tmp_path):
    with pytest.raises(GafuError, match="cannot load the style model 'nobody/no-such-clip'") as err:
        load_embedder("nobody/no-such-clip")
    assert "\n" not in str(err.value) and "[check] style_model" in str(err.value)
    (tmp_path / "config.json").write_text("{}", encoding="utf-8")
    with pytest.raises(GafuError, match="cannot load the style model"):
        load_embedder(str(tmp_path))
