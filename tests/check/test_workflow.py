"""End to end: a project prepared and tagged the gafu way, checked, fixed with `gafu tags`, checked again."""

import json
import shlex
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from gafu.cli import main
from tests.conftest import gafu_env, write_captioned_set

TRIGGER = "mzh_style"
# What a WD tagger writes at T2's thresholds: few tags on the target (0.5), more on reg (0.35).
TARGET = [
    [TRIGGER, "1girl", "solo", "long hair", "white dress", "smile", "letterboxed"],
    [TRIGGER, "1girl", "solo", "school uniform", "pleated skirt", "looking at viewer"],
    [TRIGGER, "1girl", "short hair", "black dress", "flower"],
    [TRIGGER, "2girls", "school uniform", "smile", "outdoors", "cherry blossoms"],
    [TRIGGER, "1girl", "solo", "long hair", "white dress", "sitting"],  # bars, but no tag: T4
    [TRIGGER, "1girl", "chibi", "smile", "^_^"],
    [TRIGGER, "1girl", "solo", "long hair", "kimono", "outdoors", "censored"],
    [TRIGGER, "1girl", "solo", "short hair", "black dress", "looking at viewer"],
]
TARGET_BARS = {0: "letterboxed", 4: "pillarboxed"}
REG = [
    ["1girl", "solo", "long hair", "white dress", "smile", "looking at viewer", "blue eyes"],
    ["1girl", "solo", "school uniform", "pleated skirt", "short hair", "indoors"],
    ["2girls", "smile", "outdoors", "tree", "day", "long hair"],
    ["1girl", "solo", "black dress", "sitting", "flower", "long hair", "red eyes"],
    ["1boy", "solo", "outdoors", "looking at viewer", "short hair"],
    ["1girl", "solo", "smile", "kimono", "outdoors", "letterboxed"],
    ["1girl", "solo", "looking at viewer", "black dress", "pillarboxed", "censored"],
    ["1girl", "smile", "long hair", "white dress", "flower", "sitting"],
]
REG_BARS = {5: "letterboxed", 6: "pillarboxed"}


@pytest.fixture
def project(make_project):
    project = make_project(n_target=1, n_reg=1, trigger=TRIGGER)
    write_captioned_set(project, "target", TARGET, size=(1024, 1024), bars=TARGET_BARS, seed=11)
    write_captioned_set(project, "reg", REG, size=(1024, 1024), bars=REG_BARS, seed=22)
    return project


def expected_coverage(target, reg, not_counted):
    """D3 counted here independently of gafu: occurrences of target tags that reg also has."""
    reg_tags = {t for tags in reg for t in tags}
    counted = Counter(t for tags in target for t in tags if t not in not_counted)
    covered = sum(n for t, n in counted.items() if t in reg_tags)
    return covered / sum(counted.values()), {t: n for t, n in counted.items() if t not in reg_tags}


def run_gafu(*args, cwd: Path) -> subprocess.CompletedProcess:
    env = gafu_env()
    return subprocess.run(
        [sys.executable, "-m", "gafu", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_check_reports_coverage_and_uncovered_tags_then_fixes_apply(project, capsys):
    unwanted = {TRIGGER, *project.config.check.unwanted}
    share, uncovered = expected_coverage(TARGET, REG, unwanted)
    assert 0.8 < share < 1 and uncovered == {"cherry blossoms": 1, "chibi": 1, "^_^": 1}

    # 1. `gafu check --json`, as a user runs it in the project folder
    done = run_gafu("check", "--json", cwd=project.root)
    assert done.returncode == 0, done.stderr  # warnings only
    report = json.loads(done.stdout)
    assert report["coverage"]["share"] == pytest.approx(share)
    assert {u["tag"]: u["count"] for u in report["coverage"]["uncovered"]} == uncovered
    both_full = {"pictures": 8, "captioned": 8}
    assert report["sets"] == {"target": both_full, "reg": both_full}
    assert report["unwanted"]["censored"] == {"target": 1, "reg": 1}
    assert report["pictures_opened"] == 16
    by_code = {f["code"]: f for f in report["findings"]}
    assert set(by_code) == {"few-target-pictures", "uncovered-tags", "pillarboxed-untagged"}
    assert by_code["pillarboxed-untagged"]["files"] == ["dataset/train/2_mzh_style/t004.png"]
    assert (
        json.loads((project.reports_dir / "check.json").read_text(encoding="utf-8"))["coverage"]
        == report["coverage"]
    )

    # 2. the fixes the report suggests, through `gafu tags`
    hint = by_code["pillarboxed-untagged"]["hint"].strip("`")
    assert main([*shlex.split(hint)[1:], "-p", str(project.root)]) == 0
    # T5: chibi is part of the style wanted, so it goes from the target captions
    assert main(["tags", "remove", "chibi", "--set", "target", "-p", str(project.root)]) == 0
    # D3: `cherry blossoms` is on one reg picture that shows them but was not tagged
    add = ["tags", "add", "cherry_blossoms", "--set", "reg", "--picture", "r002", "-p", str(project.root)]
    assert main(add) == 0
    capsys.readouterr()

    # 3. checked again: the warning is gone, coverage is up, and no picture was opened again
    assert main(["check", "--json", str(project.root)]) == 0
    again = json.loads(capsys.readouterr().out)
    assert {f["code"] for f in again["findings"]} == {"few-target-pictures", "uncovered-tags"}
    assert [u["tag"] for u in again["coverage"]["uncovered"]] == ["^_^"]
    assert again["coverage"]["share"] > report["coverage"]["share"]
    assert again["pictures_opened"] == 0

    # 4. undo the three edits: the first report comes back
    for _ in range(3):
        assert main(["tags", "undo", "-p", str(project.root)]) == 0
    capsys.readouterr()
    assert main(["check", "--json", str(project.root)]) == 0
    back = json.loads(capsys.readouterr().out)
    assert back["coverage"] == report["coverage"] and back["findings"] == report["findings"]
