"""Memory across a long sample grid on the tiny model: resident memory must stay flat.

Renders a sheet of many rows (weights) × prompts × with/without trigger, picture by picture, as
`gafu sample` does, and records the process's own memory after every row. The baseline is the
memory after the first row, measured in the same run; the figure is the growth per picture
after it (0 = flat). A second pass loads a LoKr file per row (epochs mode) the same way.

    python bench/sample_memory.py --rows 40
"""

from __future__ import annotations

import argparse
import gc
import tempfile
from pathlib import Path

import psutil
import torch

from gafu.families import get_family
from gafu.models.load import load_base_model
from gafu.models.memory import owned_bytes
from gafu.models.tiny import save_tiny_model
from gafu.network.files import load_network, lokr_metadata, save_network
from gafu.network.lokr import build_network
from gafu.network.settings import LokrSettings
from gafu.sample.prompts import SamplePrompt
from gafu.sample.render import SampleRenderer
from gafu.sample.schedulers import NoiseSchedule
from gafu.sample.sheet import Row, render_sheet

MIB = 1 << 20


def lokr_file(base, folder: Path) -> Path:
    settings = LokrSettings(dim=4, conv_dim=4, alpha=4.0, conv_alpha=4.0, factor=4)
    network = build_network(base.unet, base.text_encoders, settings)
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.normal_(0, 0.3)
    metadata = lokr_metadata(
        settings, get_family("illustrious"), output_name="bench", resolution=64, num_epochs=1
    )
    return save_network(network, folder / "bench.safetensors", metadata=metadata, dtype="fp32")


def measure(label: str, rows: list[Row], renderer, prompts, folder: Path, **kwargs) -> None:
    process = psutil.Process()
    readings: list[int] = []
    for i, row in enumerate(rows):  # one row at a time, to read memory between rows
        render_sheet(renderer, [row], prompts, folder, trigger="bench_style", reuse=False, **kwargs)
        gc.collect()
        readings.append(owned_bytes(process))
        if i == 0:
            baseline = readings[0]
    pictures_after_first = (len(rows) - 1) * len(prompts) * 2
    growth = readings[-1] - baseline
    print(
        f"{label}: {len(rows)} rows, {len(rows) * len(prompts) * 2} pictures; memory after row 1 "
        f"{baseline / MIB:.1f} MiB, after the last {readings[-1] / MIB:.1f} MiB, "
        f"peak {max(readings) / MIB:.1f} MiB; growth {growth / MIB:+.2f} MiB = "
        f"{growth / max(1, pictures_after_first) / 1024:+.1f} KiB per picture "
        f"({readings[-1] / baseline:.3f}× the baseline)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=40)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        base = load_base_model(save_tiny_model(root / "tiny").diffusers_dir, dtype=torch.float32)
        path = lokr_file(base, root)
        renderer = SampleRenderer(base, NoiseSchedule(False, False, "leading"), sampler="euler_a")
        prompts = [
            SamplePrompt(text, "lowres", 64, 64, 3, 5.0, 1234, "euler_a")
            for text in ("1girl, white dress", "black hair")
        ]
        weights = [round(0.05 * i, 2) for i in range(args.rows)]
        network = load_network(path, base.unet, base.text_encoders)
        measure(
            "weights",
            [Row(f"w {w}", f"w{w}", w) for w in weights],
            renderer,
            prompts,
            root / "w",
            network=network,
        )
        network.restore()
        del network

        def load(lokr: Path):
            return load_network(lokr, base.unet, base.text_encoders)

        epochs = [Row(f"file {i}", f"e{i}", 1.0, lokr=path) for i in range(args.rows)]
        measure("a file per row", epochs, renderer, prompts, root / "e", load=load)


if __name__ == "__main__":
    main()
