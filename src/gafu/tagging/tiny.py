"""A tiny WD-format tagger whose scores are a simple, documented function of picture statistics.

It has the published interface — a folder with `model.onnx` (input `(N, 448, 448, 3)` float32
BGR 0–255, output `(N, n_tags)` probabilities) and `selected_tags.csv` (rating, general and
character rows) — so gafu's tests, and `gafu demo` on a synthetic dataset, run the real
onnxruntime path without model weights.

Each tag's probability is `sigmoid(bias + Σ weight[f] · feature[f])` over these features of
the prepared picture `x` (values scaled to 0–1, BGR order):

| feature | value |
|---|---|
| `blue`, `green`, `red` | mean of that channel |
| `contrast` | mean absolute deviation of all values from their mean |
| `saturation` | mean over pixels of (largest channel − smallest channel) |
| `edges` | mean absolute difference between neighbouring pixels (across and down, averaged) |
| `top_minus_bottom` | mean of the top half − mean of the bottom half |
| `left_minus_right` | mean of the left half − mean of the right half |

Because the scores depend on channel means and halves, they show exactly whether a picture
was fed in BGR order and padded, centred, with white. `picture_features` and
`tiny_probabilities` compute the same function in numpy, for tests to predict scores.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from gafu.fsio import write_bytes_atomic, write_text_atomic
from gafu.tagging.labels import CHARACTER, GENERAL, LABELS_FILE, RATING
from gafu.tagging.locate import MODEL_FILE

FEATURES = (
    "blue",
    "green",
    "red",
    "contrast",
    "saturation",
    "edges",
    "top_minus_bottom",
    "left_minus_right",
)
TINY_SIDE = 448  # the published v3 input side
_OPSET = 17  # Reduce* take `axes` as an attribute up to 17; old onnxruntime builds load it
_IR_VERSION = 8


@dataclass(frozen=True)
class TinyTag:
    """One output of the tiny tagger: `sigmoid(bias + Σ weights[feature] · feature)`."""

    name: str
    category: int = GENERAL
    bias: float = 0.0
    weights: Mapping[str, float] = field(default_factory=dict)


# A default vocabulary that tells flat-colour pictures from textured ones and reads colour themes.
DEFAULT_TINY_TAGS: tuple[TinyTag, ...] = (
    TinyTag("general", RATING, bias=2.0),
    TinyTag("sensitive", RATING, bias=-2.0),
    TinyTag("questionable", RATING, bias=-4.0),
    TinyTag("explicit", RATING, bias=-6.0),
    TinyTag("1girl", bias=1.0),  # ≈ 0.73 on every picture: above both thresholds
    TinyTag("solo", bias=0.3),  # ≈ 0.57
    TinyTag("looking_at_viewer", bias=-0.2),  # ≈ 0.45: on reg captions (0.35), not target ones (0.5)
    TinyTag("flat_color", bias=3.0, weights={"edges": -60.0}),
    TinyTag("traditional_media", bias=-3.0, weights={"edges": 30.0}),
    TinyTag("white_background", bias=-10.0, weights={"blue": 4.0, "green": 4.0, "red": 4.0}),
    TinyTag("monochrome", bias=2.0, weights={"saturation": -20.0}),
    TinyTag("colorful", bias=-4.0, weights={"saturation": 12.0}),
    TinyTag("red_theme", bias=-3.0, weights={"red": 10.0, "green": -5.0, "blue": -5.0}),
    TinyTag("green_theme", bias=-3.0, weights={"green": 10.0, "red": -5.0, "blue": -5.0}),
    TinyTag("blue_theme", bias=-3.0, weights={"blue": 10.0, "red": -5.0, "green": -5.0}),
    TinyTag("gradient_background", bias=-2.0, weights={"top_minus_bottom": 30.0}),
    TinyTag("star_(symbol)", bias=-4.0, weights={"saturation": 6.0, "edges": 10.0}),
    TinyTag("^_^", bias=-2.5, weights={"contrast": 8.0}),
    TinyTag("hatsune_miku", CHARACTER, bias=-4.0, weights={"green": 6.0, "blue": 6.0, "red": -12.0}),
)


def build_tiny_tagger(
    folder: Path,
    tags: Sequence[TinyTag] = DEFAULT_TINY_TAGS,
    *,
    side: int = TINY_SIDE,
    layout: Literal["NHWC", "NCHW"] = "NHWC",
    batch: int | None = None,
) -> Path:
    """Write `model.onnx` + `selected_tags.csv` into `folder` and return it.

    `layout="NCHW"` and a fixed `batch` make the variants some exports have.
    """
    folder = Path(folder)
    write_bytes_atomic(folder / MODEL_FILE, _tiny_model(tags, side, layout, batch).SerializeToString())
    write_text_atomic(folder / LABELS_FILE, selected_tags_csv(tags))
    return folder


def selected_tags_csv(tags: Sequence[TinyTag]) -> str:
    """The CSV text WD taggers ship: `tag_id,name,category,count`, one row per output."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["tag_id", "name", "category", "count"])
    for i, tag in enumerate(tags):
        writer.writerow([i, tag.name, tag.category, 1000 - i])
    return out.getvalue()


def picture_features(pixels: np.ndarray) -> dict[str, float]:
    """The features of one prepared picture `(H, W, 3)` BGR 0–255, as the tiny model computes them."""
    x = pixels.astype(np.float64) / 255.0
    h, w = x.shape[0] // 2, x.shape[1] // 2
    edges = (np.abs(np.diff(x, axis=1)).mean() + np.abs(np.diff(x, axis=0)).mean()) / 2
    return {
        "blue": x[:, :, 0].mean(),
        "green": x[:, :, 1].mean(),
        "red": x[:, :, 2].mean(),
        "contrast": np.abs(x - x.mean()).mean(),
        "saturation": (x.max(axis=2) - x.min(axis=2)).mean(),
        "edges": edges,
        "top_minus_bottom": x[:h].mean() - x[x.shape[0] - h :].mean(),
        "left_minus_right": x[:, :w].mean() - x[:, x.shape[1] - w :].mean(),
    }


def tiny_probabilities(pixels: np.ndarray, tags: Sequence[TinyTag] = DEFAULT_TINY_TAGS) -> np.ndarray:
    """The tiny tagger's output `(n_tags,)` for one prepared picture, computed in numpy."""
    features = picture_features(pixels)
    logits = [tag.bias + sum(w * features[f] for f, w in tag.weights.items()) for tag in tags]
    return 1.0 / (1.0 + np.exp(-np.asarray(logits)))


def _weights(tags: Sequence[TinyTag]) -> tuple[np.ndarray, np.ndarray]:
    unknown = sorted({f for tag in tags for f in tag.weights} - set(FEATURES))
    if unknown:
        raise ValueError(f"unknown tiny-tagger features {unknown}; known: {', '.join(FEATURES)}")
    matrix = np.array([[tag.weights.get(f, 0.0) for tag in tags] for f in FEATURES], dtype=np.float32)
    return matrix, np.array([tag.bias for tag in tags], dtype=np.float32)  # (F, T), (T,)


def _tiny_model(tags: Sequence[TinyTag], side: int, layout: str, batch: int | None):  # -> onnx.ModelProto
    from onnx import TensorProto, helper, numpy_helper

    matrix, bias = _weights(tags)
    half = side // 2
    n = batch if batch else "batch"
    shape = [n, side, side, 3] if layout == "NHWC" else [n, 3, side, side]
    constants = {
        "scale": np.array(1 / 255, dtype=np.float32),
        "two": np.array(2, dtype=np.float32),
        "weights": matrix,
        "bias": bias,
        "shape_n111": np.array([-1, 1, 1, 1], dtype=np.int64),
        **{f"i{v}": np.array([v], dtype=np.int64) for v in {0, 1, 2, half, side - half, side - 1, side}},
    }
    nodes = []

    def node(op: str, inputs: list[str], output: str, **attrs) -> str:
        nodes.append(helper.make_node(op, inputs, [output], **attrs))
        return output

    def mean(x: str, axes: list[int], out: str) -> str:  # (N, …) → (N, 1)
        # One axis at a time: float32 sums of at most `side` values stay exact to ~1e-7.
        for axis in sorted(axes, reverse=True):
            x = node("ReduceMean", [x], f"{out}_r{axis}", axes=[axis], keepdims=1)
        return node("Flatten", [x], out, axis=1)

    def part(x: str, axis: int, start: int, end: int, out: str) -> str:
        return node("Slice", [x, f"i{start}", f"i{end}", f"i{axis}"], out)

    source = "input" if layout == "NHWC" else node("Transpose", ["input"], "nhwc", perm=[0, 2, 3, 1])
    x = node("Mul", [source, "scale"], "x")  # (N, H, W, 3) in 0–1, BGR
    column_means = node("ReduceMean", [x], "column_means", axes=[2], keepdims=0)  # (N, H, 3)
    channel_means = node("ReduceMean", [column_means], "channel_means", axes=[1], keepdims=0)  # (N, 3)
    overall = node("Reshape", [mean(x, [1, 2, 3], "overall_flat"), "shape_n111"], "overall")  # (N, 1, 1, 1)
    contrast = mean(node("Abs", [node("Sub", [x, overall], "dev")], "absdev"), [1, 2, 3], "contrast")
    largest = node("ReduceMax", [x], "largest", axes=[3])  # (N, H, W, 1)
    spread = node("Sub", [largest, node("ReduceMin", [x], "smallest", axes=[3])], "spread")
    saturation = mean(spread, [1, 2, 3], "saturation")
    across = node("Sub", [part(x, 2, 1, side, "xr"), part(x, 2, 0, side - 1, "xl")], "across")
    down = node("Sub", [part(x, 1, 1, side, "xd"), part(x, 1, 0, side - 1, "xu")], "down")
    edge_sum = node(
        "Add",
        [mean(node("Abs", [across], "across_abs"), [1, 2, 3], "edges_a"),
         mean(node("Abs", [down], "down_abs"), [1, 2, 3], "edges_d")],
        "edge_sum",
    )  # fmt: skip
    edges = node("Div", [edge_sum, "two"], "edges")
    top = mean(part(x, 1, 0, half, "top"), [1, 2, 3], "top_mean")
    bottom = mean(part(x, 1, side - half, side, "bottom"), [1, 2, 3], "bottom_mean")
    left = mean(part(x, 2, 0, half, "left"), [1, 2, 3], "left_mean")
    right = mean(part(x, 2, side - half, side, "right"), [1, 2, 3], "right_mean")
    vertical = node("Sub", [top, bottom], "top_minus_bottom")
    horizontal = node("Sub", [left, right], "left_minus_right")
    features = node(
        "Concat", [channel_means, contrast, saturation, edges, vertical, horizontal], "features", axis=1
    )  # (N, 8), in FEATURES order
    logits = node("Add", [node("MatMul", [features, "weights"], "weighted"), "bias"], "logits")
    node("Sigmoid", [logits], "output")  # (N, T): probabilities, as the published graphs give

    graph = helper.make_graph(
        nodes,
        "gafu-tiny-wd-tagger",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [n, len(tags)])],
        initializer=[numpy_helper.from_array(value, name) for name, value in constants.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", _OPSET)], producer_name="gafu")
    model.ir_version = _IR_VERSION
    return model
