"""One sheet of samples: every prompt at every row (a weight, or an epoch's file), with and without
the trigger, saved picture by picture, then one labelled grid per prompt.

Pictures are written as soon as they are rendered and dropped, so memory stays flat however long
the sheet. Each picture carries the settings that made it; a picture already on disk with the
same settings is kept instead of rendered again, so an interrupted sheet resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import gc
import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from gafu.sample.grid import GridSpec, png_text, save_grid, save_picture
from gafu.sample.prompts import SamplePrompt
from gafu.sample.render import SampleRenderer, network_at

SAMPLE_KEY = "gafu_sample"
COLUMNS = (("with trigger", True), ("without trigger", False))


@dataclass(frozen=True)
class Row:
    """One row of a grid: the network at a weight; in epochs mode, its own LoKr file."""

    label: str  # "weight 0.5", "epoch 10"
    slug: str  # in file names: "w0.5", "e000010"
    weight: float
    lokr: Path | None = None  # loaded for this row only; None = the sheet's network
    lokr_id: str = ""  # the file's content hash, so a changed file is rendered again


def weight_rows(weights: list[float]) -> list[Row]:
    """One row per LoKr weight (P10)."""
    return [Row(f"weight {w:g}", f"w{w:g}", float(w)) for w in weights]


@dataclass
class SheetResult:
    """What a sheet wrote."""

    grids: list[Path]
    rendered: int = 0
    reused: int = 0


# A LoKr file → a network rebuilt on the base model (not applied).
NetworkLoader = Callable[[Path], object]
# Called after each picture with its path and whether it was rendered (False: kept from before).
PictureDone = Callable[[Path, bool], None]


def render_sheet(
    renderer: SampleRenderer,
    rows: list[Row],
    prompts: list[SamplePrompt],
    folder: Path,
    *,
    trigger: str,
    network=None,
    load: NetworkLoader | None = None,
    identity: str = "",
    reuse: bool = True,
    on_picture: PictureDone | None = None,
) -> SheetResult:
    """Render the sheet into `folder`; returns one grid per prompt.

    `identity` names what the pictures are of (base model, LoKr file); with `reuse`, pictures on
    disk with the same identity and settings are kept.
    """
    result = SheetResult(grids=[])
    for row in rows:
        todo = []
        for index, prompt in enumerate(prompts, start=1):
            for _, with_trigger in COLUMNS:
                picture = _picture(folder, index, prompt, row, with_trigger, trigger, identity)
                if reuse and _is_current(picture):
                    result.reused += 1
                    if on_picture:
                        on_picture(picture.path, False)
                else:
                    todo.append(picture)
        if not todo:
            continue  # the row's file is not even loaded
        with _row_network(row, network, load) as active, network_at(active, row.weight):
            for picture in todo:
                image = renderer.render(picture.prompt, picture.text)
                parameters = _parameters(picture.prompt, picture.text, row)
                save_picture(image, picture.path, {"parameters": parameters, SAMPLE_KEY: picture.key})
                del image  # nothing kept between pictures: memory stays flat
                result.rendered += 1
                if on_picture:
                    on_picture(picture.path, True)
    for prompt_index, prompt in enumerate(prompts, start=1):
        spec = GridSpec(
            title=prompt.text,
            subtitle=_settings_line(prompt),
            row_labels=[row.label for row in rows],
            column_labels=[label for label, _ in COLUMNS],
            cells=[
                [_picture_name(prompt_index, row, with_trigger) for _, with_trigger in COLUMNS]
                for row in rows
            ],
        )
        result.grids.append(save_grid(spec, folder, f"p{prompt_index:02d}"))
    return result


@contextlib.contextmanager
def _row_network(row: Row, network, load: NetworkLoader | None) -> Iterator[object]:
    """The sheet's network, or the row's own file loaded for the row and dropped after it."""
    if row.lokr is None or load is None:
        yield network
        return
    loaded = load(row.lokr)
    try:
        yield loaded
    finally:
        loaded.restore()
        del loaded
        gc.collect()  # the file's tensors go now, before the next row's load


def _picture_name(prompt_index: int, row: Row, with_trigger: bool) -> str:
    return f"p{prompt_index:02d}-{row.slug}-{'trigger' if with_trigger else 'plain'}.png"


@dataclass(frozen=True)
class _Picture:
    prompt: SamplePrompt
    text: str  # the prompt as rendered: with the trigger or without
    path: Path
    key: str  # everything that decides its pixels, as JSON


def _picture(folder, index, prompt, row, with_trigger, trigger, identity) -> _Picture:
    text = prompt.with_trigger(trigger) if with_trigger else prompt.text
    settings = {k: v for k, v in asdict(prompt).items() if k != "source"}
    key = {"of": identity, "lokr": row.lokr_id, "weight": row.weight, "prompt": text, **settings}
    return _Picture(
        prompt, text, folder / _picture_name(index, row, with_trigger), json.dumps(key, sort_keys=True)
    )


def _is_current(picture: _Picture) -> bool:
    return picture.path.is_file() and png_text(picture.path).get(SAMPLE_KEY) == picture.key


def _settings_line(prompt: SamplePrompt) -> str:
    return (
        f"seed {prompt.seed} · {prompt.steps} steps · CFG {prompt.cfg:g} · {prompt.scheduler} · "
        f"{prompt.width}x{prompt.height} · negative: {prompt.negative or '(none)'}"
    )


def _parameters(prompt: SamplePrompt, text: str, row: Row) -> str:
    """The picture's settings as AUTOMATIC1111/Forge write them (their PNG Info tab reads this)."""
    return (
        f"{text}\nNegative prompt: {prompt.negative}\n"
        f"Steps: {prompt.steps}, Sampler: {prompt.scheduler}, CFG scale: {prompt.cfg:g}, "
        f"Seed: {prompt.seed}, "
        f"Size: {prompt.width}x{prompt.height}, LoKr weight: {row.weight:g}, Row: {row.label}"
    )
