"""The tagger's input (read from the graph), preprocessing exactness, and the tiny tagger itself."""

import numpy as np
import pytest
from PIL import Image

from gafu.errors import GafuError
from gafu.tagging.labels import CHARACTER, GENERAL, RATING, read_labels
from gafu.tagging.locate import locate_tagger
from gafu.tagging.model import choose_providers, open_tagger
from gafu.tagging.preprocess import load_for_tagger
from gafu.tagging.tiny import DEFAULT_TINY_TAGS, TinyTag, build_tiny_tagger, tiny_probabilities

SIDE = 448


def _bgr(rgb_pixels: np.ndarray) -> np.ndarray:
    return rgb_pixels[:, :, ::-1].astype(np.float32)


def _reference_prepare(image: Image.Image) -> np.ndarray:
    """The published models' reference preprocessing, written out independently."""
    canvas = Image.new("RGBA", image.size, (255, 255, 255, 255))
    canvas.alpha_composite(image.convert("RGBA"))
    image = canvas.convert("RGB")
    side = max(image.size)
    square = Image.new("RGB", (side, side), (255, 255, 255))
    square.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
    if side != SIDE:
        square = square.resize((SIDE, SIDE), Image.Resampling.BICUBIC)
    return _bgr(np.asarray(square))


def _model_scores(tagger_folder, path):
    tagger = open_tagger(locate_tagger(str(tagger_folder)))
    pixels = load_for_tagger(path, tagger.input.height, tagger.input.width)
    return tagger.predict(pixels[None])[0]


def test_tiny_tagger_has_the_published_interface(tiny_tagger):
    tagger = open_tagger(locate_tagger(str(tiny_tagger)))
    spec = tagger.input
    assert (spec.layout, spec.height, spec.width, spec.batch) == ("NHWC", SIDE, SIDE, None)
    assert spec.dtype == np.float32
    labels = read_labels(tiny_tagger / "selected_tags.csv")
    assert {RATING, GENERAL, CHARACTER} <= set(labels.categories)
    assert len(labels) == len(DEFAULT_TINY_TAGS)
    assert tagger.provider == "CPUExecutionProvider"


def test_tiny_tagger_matches_its_documented_function(tiny_tagger):
    rng = np.random.default_rng(3)
    pictures = rng.uniform(0, 255, size=(2, SIDE, SIDE, 3)).astype(np.float32)
    pictures[1, :100] = 255.0  # a white band: uneven halves
    tagger = open_tagger(locate_tagger(str(tiny_tagger)))
    got = tagger.predict(pictures)
    expected = np.stack([tiny_probabilities(p) for p in pictures])
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_channels_are_fed_in_bgr_order(tiny_tagger, tmp_path):
    blue = np.zeros((SIDE, SIDE, 3), np.uint8)
    blue[:, :, 2] = 255  # RGB blue
    path = tmp_path / "blue.png"
    Image.fromarray(blue).save(path)
    scores = _model_scores(tiny_tagger, path)
    np.testing.assert_allclose(scores, tiny_probabilities(_bgr(blue)), atol=1e-5)
    names = [t.name for t in DEFAULT_TINY_TAGS]
    assert scores[names.index("blue_theme")] > 0.9 > 0.1 > scores[names.index("red_theme")]


@pytest.mark.parametrize("size", [(SIDE, SIDE // 2), (SIDE // 2, SIDE)])
def test_pictures_are_centred_on_white_squares(tiny_tagger, tmp_path, size):
    red = np.zeros((size[1], size[0], 3), np.uint8)
    red[:, :, 0] = 255
    path = tmp_path / "red.png"
    Image.fromarray(red).save(path)
    expected = np.full((SIDE, SIDE, 3), 255, np.uint8)
    top, left = (SIDE - size[1]) // 2, (SIDE - size[0]) // 2
    expected[top : top + size[1], left : left + size[0]] = red
    scores = _model_scores(tiny_tagger, path)
    np.testing.assert_allclose(scores, tiny_probabilities(_bgr(expected)), atol=1e-5)


def test_resizing_and_transparency_follow_the_reference(tiny_tagger, tmp_path):
    rng = np.random.default_rng(5)
    rgba = rng.integers(0, 256, size=(120, 300, 4), dtype=np.uint8)
    rgba[:, :150, 3] = 0  # the left half fully transparent: must become white, not its hidden colour
    image = Image.fromarray(rgba, "RGBA")
    path = tmp_path / "alpha.png"
    image.save(path)
    np.testing.assert_allclose(
        _model_scores(tiny_tagger, path), tiny_probabilities(_reference_prepare(image)), atol=1e-5
    )


def test_nchw_and_fixed_batch_exports_give_the_same_scores(tiny_tagger, tmp_path):
    rng = np.random.default_rng(9)
    pictures = rng.uniform(0, 255, size=(3, SIDE, SIDE, 3)).astype(np.float32)
    reference = open_tagger(locate_tagger(str(tiny_tagger))).predict(pictures)
    nchw = open_tagger(locate_tagger(str(build_tiny_tagger(tmp_path / "nchw", layout="NCHW"))))
    fixed = open_tagger(locate_tagger(str(build_tiny_tagger(tmp_path / "fixed", batch=2))))
    assert nchw.input.layout == "NCHW" and fixed.input.batch == 2
    np.testing.assert_allclose(nchw.predict(pictures), reference, atol=1e-6)
    np.testing.assert_allclose(fixed.predict(pictures), reference, atol=1e-6)  # 2 + 1 padded


def test_label_count_that_does_not_match_the_model_is_a_clear_error(tiny_tagger, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "model.onnx").write_bytes((tiny_tagger / "model.onnx").read_bytes())
    lines = (tiny_tagger / "selected_tags.csv").read_text(encoding="utf-8").splitlines()
    (folder / "selected_tags.csv").write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")
    with pytest.raises(GafuError) as caught:
        open_tagger(locate_tagger(str(folder)))
    message = str(caught.value)
    assert f"lists {len(DEFAULT_TINY_TAGS) - 1} tags" in message
    assert f"outputs {len(DEFAULT_TINY_TAGS)} scores" in message
    assert "different taggers" in message and "selected_tags.csv" in message


def test_files_that_are_not_a_tagger_are_clear_errors(tiny_tagger, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.onnx").write_bytes(b"not a model")
    (broken / "selected_tags.csv").write_bytes((tiny_tagger / "selected_tags.csv").read_bytes())
    with pytest.raises(GafuError, match=r"cannot load .*model\.onnx.*re-download"):
        open_tagger(locate_tagger(str(broken)))
    (broken / "model.onnx").write_bytes((tiny_tagger / "model.onnx").read_bytes())
    (broken / "selected_tags.csv").write_text("id,tag\n0,a\n", encoding="utf-8")
    with pytest.raises(GafuError, match="no `name` and `category` columns"):
        open_tagger(locate_tagger(str(broken)))


def test_a_model_that_outputs_logits_is_refused(tmp_path):
    import onnx

    folder = build_tiny_tagger(tmp_path / "t", [TinyTag("a", bias=3.0)])
    model = onnx.load(folder / "model.onnx")
    (sigmoid,) = [node for node in model.graph.node if node.op_type == "Sigmoid"]
    sigmoid.op_type = "Identity"  # an export that ends before the sigmoid
    onnx.save(model, folder / "model.onnx")
    tagger = open_tagger(locate_tagger(str(folder)))
    with pytest.raises(GafuError, match="outside 0–1"):
        tagger.predict(np.zeros((1, SIDE, SIDE, 3), np.float32))


def test_providers_prefer_cuda_and_always_keep_cpu():
    assert choose_providers(["CUDAExecutionProvider", "CPUExecutionProvider"]) == [
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]
    assert choose_providers(["AzureExecutionProvider", "CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert choose_providers(["CUDAExecutionProvider"], cpu_only=True) == ["CPUExecutionProvider"]
