"""The WD tagger as an onnxruntime session: the input the graph asks for, and its probabilities.

Everything about the input is read from the graph: its side (448 for the v3 models), layout
(NHWC for the published models; NCHW exports are transposed for) and batch (dynamic, or fixed
in some older exports). The output is already a probability per tag (the published graphs
end in a sigmoid), so gafu applies none of its own.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from gafu.errors import GafuError
from gafu.tagging.labels import LABELS_FILE, TaggerLabels, read_labels
from gafu.tagging.locate import MODEL_FILE, TaggerFiles

# Execution providers in order of preference; CPU is always there.
PREFERRED_PROVIDERS = ("CUDAExecutionProvider", "DmlExecutionProvider", "CPUExecutionProvider")
_INPUT_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


@dataclass(frozen=True)
class InputSpec:
    """What the graph's picture input takes."""

    name: str
    layout: Literal["NHWC", "NCHW"]
    height: int
    width: int
    batch: int | None  # a fixed batch size, or None when the batch dimension is dynamic
    dtype: Any  # numpy dtype


class Tagger:
    """An open WD tagger: session, labels, and the time spent inside the model."""

    def __init__(self, session: Any, labels: TaggerLabels, files: TaggerFiles, spec: InputSpec):
        self.session = session
        self.labels = labels
        self.files = files
        self.input = spec
        self.output_name: str = session.get_outputs()[0].name
        self.model_seconds = 0.0  # wall time inside session.run, for the "model busy" figure

    @property
    def provider(self) -> str:
        """The execution provider in use (CUDA falls back to CPU when its libraries are missing)."""
        return self.session.get_providers()[0]

    def predict(self, pictures: np.ndarray) -> np.ndarray:
        """Probabilities `(N, n_tags)` for prepared pictures `(N, H, W, 3)` float32 BGR 0–255."""
        fixed = self.input.batch
        if fixed is None or fixed == len(pictures):
            return self._run(pictures)
        # A fixed-batch graph: run chunks of its size, the last one padded and its padding dropped.
        outputs = []
        for start in range(0, len(pictures), fixed):
            chunk = pictures[start : start + fixed]
            padding = np.zeros((fixed - len(chunk), *chunk.shape[1:]), dtype=chunk.dtype)
            outputs.append(self._run(np.concatenate([chunk, padding]))[: len(chunk)])
        return np.concatenate(outputs)

    def _run(self, pictures: np.ndarray) -> np.ndarray:
        feed = pictures if self.input.layout == "NHWC" else pictures.transpose(0, 3, 1, 2)  # → (N, 3, H, W)
        feed = np.ascontiguousarray(feed, dtype=self.input.dtype)
        started = time.perf_counter()
        try:
            (probabilities,) = self.session.run([self.output_name], {self.input.name: feed})
        except Exception as exc:  # onnxruntime's own exception types do not share a useful base
            raise GafuError(
                f"the tagger {self.files.model} failed on a batch ({exc.__class__.__name__}: {exc})",
                path=self.files.model,
                hint="try --batch-size 1, or --cpu if the GPU ran out of memory",
            ) from exc
        self.model_seconds += time.perf_counter() - started
        probabilities = np.asarray(probabilities, dtype=np.float32).reshape(len(pictures), -1)
        self._check_output(probabilities)
        return probabilities

    def _check_output(self, probabilities: np.ndarray) -> None:
        if probabilities.shape[1] != len(self.labels):
            raise _count_mismatch(self.files, len(self.labels), probabilities.shape[1])
        if probabilities.size and (probabilities.min() < -1e-3 or probabilities.max() > 1 + 1e-3):
            raise GafuError(
                f"{self.files.model} outputs values outside 0–1, so it is not a WD tagger "
                "(whose outputs are probabilities)",
                path=self.files.model,
                hint="use a WD tagger's model.onnx",
            )


def open_tagger(files: TaggerFiles, *, cpu_only: bool = False) -> Tagger:
    """Load the labels and start an onnxruntime session on the best provider there is."""
    import onnxruntime as ort

    labels = read_labels(files.labels)
    providers = choose_providers(ort.get_available_providers(), cpu_only=cpu_only)
    try:
        session = ort.InferenceSession(str(files.model), _session_options(ort), providers=providers)
    except Exception as exc:  # InvalidProtobuf, NoSuchFile, Fail …: no common base class
        raise GafuError(
            f"onnxruntime cannot load {files.model} ({exc.__class__.__name__}: {exc})",
            path=files.model,
            hint=f"re-download {MODEL_FILE}; it may be incomplete",
        ) from exc
    spec = read_input_spec(session, files)
    outputs = session.get_outputs()[0].shape
    if len(outputs) == 2 and isinstance(outputs[1], int) and outputs[1] != len(labels):
        raise _count_mismatch(files, len(labels), outputs[1])
    return Tagger(session, labels, files, spec)


def choose_providers(available: list[str], *, cpu_only: bool = False) -> list[str]:
    """Providers to ask onnxruntime for: CUDA (or DirectML) when installed, always CPU as the fallback."""
    if cpu_only:
        return ["CPUExecutionProvider"]
    return [p for p in PREFERRED_PROVIDERS if p in available or p == "CPUExecutionProvider"]


def model_threads() -> int:
    """Threads for the model's operators: one per physical core."""
    import psutil

    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


def _session_options(ort: Any) -> Any:
    options = ort.SessionOptions()
    # Set, not left to onnxruntime: when it picks the count itself it also pins its threads to
    # cores, and a pinned thread waits whenever its core is busy (with gafu's own loader threads,
    # or anything else the user runs); unpinned ran 1.4–3.2× faster on a busy machine
    # (docs/benchmarks.md).
    options.intra_op_num_threads = model_threads()
    return options


def read_input_spec(session: Any, files: TaggerFiles) -> InputSpec:
    """The picture input of the graph: NHWC `(N, H, W, 3)` as published, or NCHW `(N, 3, H, W)`."""
    graph_input = session.get_inputs()[0]
    shape = list(graph_input.shape)
    dtype = _INPUT_DTYPES.get(graph_input.type)
    if len(shape) != 4 or dtype is None:
        raise _not_a_tagger(files, f"its input is {graph_input.type} {shape}")
    if shape[3] == 3:
        layout, height, width = "NHWC", shape[1], shape[2]
    elif shape[1] == 3:
        layout, height, width = "NCHW", shape[2], shape[3]
    else:
        raise _not_a_tagger(files, f"its input {shape} has no dimension of 3 colour channels")
    if not (isinstance(height, int) and isinstance(width, int)):
        raise _not_a_tagger(files, f"its input {shape} does not fix the picture size")
    batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
    return InputSpec(graph_input.name, layout, height, width, batch, dtype)


def _not_a_tagger(files: TaggerFiles, why: str) -> GafuError:
    return GafuError(
        f"{files.model} does not look like a WD tagger: {why} (expected float pictures (N, 448, 448, 3))",
        path=files.model,
        hint="use a WD tagger's model.onnx",
    )


def _count_mismatch(files: TaggerFiles, n_labels: int, n_outputs: int) -> GafuError:
    return GafuError(
        f"{files.labels} lists {n_labels} tags but {files.model} outputs {n_outputs} scores per "
        "picture: the two files come from different taggers",
        path=files.labels,
        hint=f"put the {LABELS_FILE} that came with this {MODEL_FILE} beside it",
    )
