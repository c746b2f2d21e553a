"""Batched inference with pictures decoded and prepared in threads while the model runs.

Pillow's decoding and resizing and onnxruntime's `session.run` release the GIL, so a small
thread pool keeps the next batch ready while the model works on the current one. Threads
(not processes) work the same on Windows and Linux and share the prepared arrays without
copying.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from gafu.errors import GafuError
from gafu.fsio import sha256_file
from gafu.images import WHITE, load_picture
from gafu.tagging.model import Tagger
from gafu.tagging.preprocess import prepare_picture


@dataclass
class Scored:
    """The model's probabilities `(n_tags,)` for the picture at `index`."""

    index: int
    picture_sha256: str
    probabilities: np.ndarray
    described: Any = None  # what `describe` made of the decoded picture, when one was given


@dataclass
class Failed:
    """A picture that could not be read."""

    index: int
    error: GafuError


@dataclass
class _Prepared:
    index: int
    picture_sha256: str
    pixels: np.ndarray  # (H, W, 3) float32 BGR
    described: Any = None


def loader_threads() -> int:
    """Threads preparing pictures: one core is left to the model, up to 4."""
    return max(1, min(4, (os.cpu_count() or 2) - 1))


def score_pictures(
    tagger: Tagger,
    paths: Sequence[Path],
    *,
    batch_size: int,
    threads: int | None = None,
    describe: Callable[[Image.Image], Any] | None = None,
) -> Iterator[Scored | Failed]:
    """Run the tagger over `paths` in batches; unreadable pictures come back as `Failed`.

    Three things overlap: loader threads prepare the next pictures, one thread runs the model
    on the current batch, and the caller handles the previous batch's results (writing
    captions), so neither disk writes nor decoding keep the model waiting. `describe`, when
    given, runs in the loader threads on each decoded picture (so it is decoded once), and its
    result comes back as `Scored.described`.
    """
    threads = threads or loader_threads()
    prefetch = 2 * batch_size + threads  # the batch being gathered, the next one, the threads' work
    height, width = tagger.input.height, tagger.input.width
    jobs = iter(enumerate(paths))
    pending: deque[Future[_Prepared | Failed]] = deque()
    loaders = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="gafu-tag-load")
    model = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gafu-tag-model")
    running: tuple[list[_Prepared], Future[np.ndarray]] | None = None
    try:

        def refill() -> None:
            while len(pending) < prefetch and (job := next(jobs, None)) is not None:
                pending.append(loaders.submit(_prepare, *job, height, width, describe))

        refill()
        batch: list[_Prepared] = []
        while pending:
            item = pending.popleft().result()
            refill()
            if isinstance(item, Failed):
                yield item
            else:
                batch.append(item)
            if batch and (len(batch) == batch_size or not pending):
                started = model.submit(tagger.predict, np.stack([p.pixels for p in batch]))  # (N, n_tags)
                if running is not None:
                    yield from _results(*running)
                running, batch = (batch, started), []
        if running is not None:
            yield from _results(*running)
    finally:
        loaders.shutdown(wait=True, cancel_futures=True)
        model.shutdown(wait=True, cancel_futures=True)


def _results(batch: list[_Prepared], probabilities: Future[np.ndarray]) -> Iterator[Scored]:
    for prepared, row in zip(batch, probabilities.result(), strict=True):
        yield Scored(prepared.index, prepared.picture_sha256, row, prepared.described)


def _prepare(
    index: int, path: Path, height: int, width: int, describe: Callable[[Image.Image], Any] | None
) -> _Prepared | Failed:
    try:
        sha = sha256_file(path)
        image = load_picture(path, WHITE).image
        described = describe(image) if describe is not None else None
        return _Prepared(index, sha, prepare_picture(image, height, width), described)
    except GafuError as exc:  # PictureError, or a read error naming the file
        return Failed(index, exc)
