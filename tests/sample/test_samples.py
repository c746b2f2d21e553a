"""`gafu sample` on a tiny project: LoKr files, epochs, the plan of the run, reuse, the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gafu.errors import GafuError
from gafu.sample.grid import read_grid
from gafu.sample.samples import SampleRequest, render_samples
from tests.conftest import gafu_env


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = gafu_env()
    return subprocess.run(
        [sys.executable, "-m", "gafu", "sample", *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_cli_renders_the_latest_lokr_and_an_index(sample_project):
    done = run_cli(str(sample_project.root), "--weights", "0,1", "--json")
    assert done.returncode == 0, done.stderr
    folder = sample_project.output_dir / "samples" / "mzh-e000002"  # no final file: the latest epoch
    grids = sorted(folder.glob("grid-*.png"))
    assert len(grids) == 2  # the two default prompts from the captions
    info = read_grid(grids[0])
    assert info["row_labels"] == ["weight 0", "weight 1"] and info["title"] == "1girl, white dress"
    index = (sample_project.output_dir / "samples" / "index.html").read_text(encoding="utf-8")
    assert "mzh-e000002/grid-p01.png" in index and "mzh-e000002/grid-p02.png" in index
    assert (sample_project.reports_dir / "sample.json").is_file()


def test_the_style_probes_figures_stand_beside_each_files_grids(sample_project):
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from gafu.eval.training import METADATA_KEY
    from gafu.reports import write_report

    epoch1 = sample_project.output_dir / "mzh-e000001.safetensors"
    with safe_open(str(epoch1), "pt") as handle:
        metadata = dict(handle.metadata())
    saved = {"weight": 1.0, "fit": 0.0412, "leakage": 0.0061, "trigger_share": 0.852, "drift": -0.002}
    metadata[METADATA_KEY] = json.dumps(saved)  # as `gafu train` stores them at a save
    save_file(load_file(str(epoch1)), str(epoch1), metadata)
    row = {"file": "output/mzh-e000001.safetensors", "weight": 0.5, "fit": 0.0203, "leakage": 0.0,
           "trigger_share": 1.0, "drift": 0.0011}  # fmt: skip
    write_report(sample_project.reports_dir, "eval", {"rows": [row]})  # as `gafu eval` keeps them
    render_samples(sample_project, SampleRequest(lokr_files=[epoch1], weights=[1.0]), device="cpu")
    render_samples(sample_project, SampleRequest(epochs=[1, 2], weights=[1.0]), device="cpu")
    index = (sample_project.output_dir / "samples" / "index.html").read_text(encoding="utf-8")
    for section in ("<h2>mzh-e000001</h2>", "<h2>epochs-1-2-w1</h2>"):
        table = index.split(section)[1].split("<figure>")[0]
        assert 'class="style-probe"' in table
        assert "<td>+4.12 %</td><td>+0.61 %</td><td>85 %</td><td>-0.20 %</td>" in table  # at its save
        assert "<td>+2.03 %</td><td>+0.00 %</td><td>100 %</td><td>+0.11 %</td>" in table  # gafu eval
    assert "epoch 1, weight 1 (at its save)" in index and "weight 0.5 (gafu eval)" in index
    assert "epoch 2" not in index.split("<h2>epochs-1-2-w1</h2>")[1].split("<figure>")[0]  # nothing known


def test_cli_names_the_bad_line_of_a_prompts_file(sample_project, tmp_path):
    prompts = tmp_path / "my prompts.txt"
    prompts.write_text("1girl, smile --w 64 --h 64\n1girl --l lots\n", encoding="utf-8")
    done = run_cli(str(sample_project.root), "--prompts", str(prompts))
    assert done.returncode == 2
    assert "my prompts.txt line 2: --l 'lots' is not a number" in done.stderr
    assert not (sample_project.output_dir / "samples").exists()  # refused before any work


def test_epochs_mode_rows_are_epochs_at_one_weight_and_reruns_keep_pictures(sample_project):
    request = SampleRequest(epochs=[1, 2], weights=[0.8])
    first = render_samples(sample_project, request, device="cpu")
    assert [f.name for f in first.folders] == ["epochs-1-2-w0.8"]
    assert read_grid(first.grids[0])["row_labels"] == ["epoch 1 (w 0.8)", "epoch 2 (w 0.8)"]
    again = render_samples(sample_project, request, device="cpu")
    assert (first.rendered, again.rendered, again.reused) == (8, 0, 8)
    reseeded = render_samples(
        sample_project, SampleRequest(epochs=[1, 2], weights=[0.8], seed=99), device="cpu"
    )
    assert reseeded.rendered == 8


def test_plan_of_the_run_decides_the_sampler(sample_project):
    from gafu.plan import resolve_plan, save_plan

    plan = resolve_plan(sample_project, 12.0)
    run_plan = plan.__class__(
        **{
            **plan.__dict__,
            "sample": plan.sample.__class__(
                **{**plan.sample.__dict__, "prompts": ["black hair"], "seed": 5, "weights": [1.0]}
            ),
        }
    )
    save_plan(run_plan, sample_project.plan_path)
    result = render_samples(
        sample_project, SampleRequest(lokr_files=[sample_project.output_dir / "mzh-e000001.safetensors"])
    )
    assert result.plan_source == str(sample_project.plan_path)
    info = read_grid(result.grids[0])
    assert (
        info["title"] == "black hair" and "seed 5" in info["subtitle"] and info["row_labels"] == ["weight 1"]
    )


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (SampleRequest(epochs=[7]), r"no LoKr for epoch 7: .* does not exist"),
        (SampleRequest(epochs=[1], weights=[0.5, 1.0]), "--epochs compares epochs at one weight"),
        (
            SampleRequest(lokr_files=[Path("missing.safetensors")]),
            "LoKr file missing.safetensors does not exist",
        ),
    ],
)
def test_bad_requests_are_clear_errors(sample_project, request_, message):
    with pytest.raises(GafuError, match=message):
        render_samples(sample_project, request_, device="cpu")


def test_no_lokr_files_yet(sample_project):
    for path in sample_project.output_dir.glob("*.safetensors"):
        path.unlink()
    with pytest.raises(GafuError, match=r"no LoKr files in .*output"):
        render_samples(sample_project, SampleRequest(), device="cpu")


def test_pictures_carry_no_folder_of_the_users_disk(sample_project, tiny_model):
    from gafu.sample.grid import png_text

    result = render_samples(sample_project, SampleRequest(weights=[1.0]), device="cpu")
    pictures = sorted(result.folders[0].glob("p*.png")) + result.grids
    local = {sample_project.root.as_posix(), tiny_model.root.resolve().as_posix(), str(tiny_model.root)}
    for picture in pictures:
        for key, value in png_text(picture).items():
            assert not [folder for folder in local if folder in value], (picture.name, key, value)
    # What a picture's settings are still tells a changed LoKr file apart: it is rendered again.
    lokr = sample_project.output_dir / (result.folders[0].name + ".safetensors")
    lokr.write_bytes(lokr.read_bytes() + b"")
    os.utime(lokr, ns=(lokr.stat().st_atime_ns, lokr.stat().st_mtime_ns + 1_000_000_000))
    assert render_samples(sample_project, SampleRequest(weights=[1.0]), device="cpu").rendered == 4
