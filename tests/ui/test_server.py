"""Every endpoint of `gafu ui` over real HTTP, with bad input: unknown pictures, traversal, bad overrides."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from gafu.captions.text import read_caption
from gafu.config import load_config
from gafu.project import Project
from gafu.ui.jobs import pid_running
from gafu.ui.server import UiSettings, refusal
from tests.conftest import add_prepared_picture, gafu_env

STAGES = ["prep", "tag", "check", "plan", "train", "sample"]


def caption_bytes(project: Project) -> dict[str, bytes]:
    """Every caption file's bytes, by name."""
    return {
        p.caption_path.name: p.caption_path.read_bytes()
        for w in ("target", "reg")
        for p in project.pictures(w)
    }


def wait_for(condition, seconds: float = 30.0) -> None:
    """Poll `condition` until it holds (fails the test after `seconds`)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# --- the page and the project state ------------------------------------------------------------
def test_the_page_and_its_static_files_are_served(ui_project, serve):
    client = serve(ui_project.root)
    page = client.get("/")
    assert page.status == 200 and b"/static/app.js" in page.body
    script = client.get("/static/app.js")
    assert "javascript" in script.headers["Content-Type"] and b"function route" in script.body
    assert client.get("/static/..%2Fserver.py").status == 404
    assert client.get("/static/nothing.css").status == 404
    assert client.get("/no/such/page").status == 404


def test_state_lists_each_stage_in_workflow_order(ui_project, serve):
    client = serve(ui_project.root)
    state = client.get("/api/state").json
    assert state["trigger"] == "mzh_style"
    assert [s["name"] for s in state["stages"]] == STAGES
    status = {s["name"]: s["status"] for s in state["stages"]}
    assert status["prep"] == "done" and status["tag"] == "done" and status["check"] == "todo"
    assert client.get("/api/check").status == 200
    assert {s["name"]: s["status"] for s in client.get("/api/state").json["stages"]}["check"] == "done"
    caption = ui_project.pictures("target")[0].caption_path
    caption.write_text(caption.read_text(encoding="utf-8") + ", smile", encoding="utf-8")
    later = time.time() + 5
    os.utime(caption, (later, later))  # a caption edited after the check ran
    assert {s["name"]: s["status"] for s in client.get("/api/state").json["stages"]}["check"] == "stale"


# --- dataset ---------------------------------------------------------------------------------------
def test_pictures_filter_by_all_any_none_of_tags(ui_project, serve):
    client = serve(ui_project.root)
    everything = client.get("/api/pictures").json
    assert everything["total"] == 7 and len(everything["pictures"]) == 7
    with_look = {p["name"] for p in everything["pictures"] if "looking at viewer" in p["tags"]}
    assert with_look and len(with_look) < 7  # the tiny tagger puts it on reg captions only (0.45)
    shown = client.get("/api/pictures?tags=looking_at_viewer&mode=all").json["pictures"]
    assert {p["name"] for p in shown} == with_look
    both = client.get("/api/pictures?tags=looking%20at%20viewer,mzh_style&mode=all").json["pictures"]
    assert both == []
    either = client.get("/api/pictures?tags=looking_at_viewer,mzh_style&mode=any").json["pictures"]
    assert len(either) == 7
    neither = client.get("/api/pictures?tags=looking_at_viewer&mode=none").json["pictures"]
    assert {p["name"] for p in neither} == {p["name"] for p in everything["pictures"]} - with_look
    target = client.get("/api/pictures?set=target").json["pictures"]
    assert {p["set"] for p in target} == {"target"} and len(target) == 4


def test_pictures_bad_filter_is_a_clear_error(ui_project, serve):
    client = serve(ui_project.root)
    reply = client.get("/api/pictures?tags=a&mode=most")
    assert reply.status == 400 and "all, any or none" in reply.json["error"]
    assert client.get("/api/pictures?set=neither").status == 400


def test_add_a_tag_to_a_selection_then_undo_restores_the_files(ui_project, serve):
    client = serve(ui_project.root)
    before = caption_bytes(ui_project)
    chosen = [p["name"] for p in client.get("/api/pictures?set=target").json["pictures"][:2]]
    result = client.post("/api/tags/edit", {"action": "add", "tags": ["red scarf"], "pictures": chosen}).json
    assert result["changed"] == {"target": 2, "reg": 0} and result["journal_id"] is not None
    tagged = [p for p in client.get("/api/pictures?tags=red_scarf").json["pictures"]]
    assert sorted(p["name"] for p in tagged) == sorted(chosen)
    for name in chosen:
        tags = read_caption((ui_project.root / name).with_suffix(".txt")).tags
        assert tags[0] == "mzh_style" and tags[-1] == "red scarf"
    history = client.get("/api/tags/history").json
    assert history[0]["action"].startswith("add") and history[0]["captions"] == 2
    undone = client.post("/api/tags/undo").json
    assert len(undone["restored"]) == 2
    assert caption_bytes(ui_project) == before
    assert client.post("/api/tags/undo").json["entry"] is None


def test_remove_and_replace_in_bulk(ui_project, serve):
    client = serve(ui_project.root)
    names = [p["name"] for p in client.get("/api/pictures").json["pictures"]]
    removed = client.post("/api/tags/edit", {"action": "remove", "tags": "1girl", "pictures": names}).json
    assert removed["changed"]["target"] + removed["changed"]["reg"] == 7
    assert client.get("/api/pictures?tags=1girl&mode=any").json["pictures"] == []
    client.post("/api/tags/undo")
    replaced = client.post(
        "/api/tags/edit", {"action": "replace", "old": "1girl", "new": "1boy", "pictures": names}
    )
    assert replaced.status == 200
    assert len(client.get("/api/pictures?tags=1boy").json["pictures"]) == 7


def test_bad_edits_change_nothing(ui_project, serve):
    client = serve(ui_project.root)
    before = caption_bytes(ui_project)
    unknown = client.post("/api/tags/edit", {"action": "add", "tags": ["x"], "pictures": ["nope.png"]})
    assert unknown.status == 400 and "nope.png" in unknown.json["error"]
    assert client.post("/api/tags/edit", {"action": "add", "tags": ["x"], "pictures": []}).status == 400
    assert client.post("/api/tags/edit", {"action": "paint", "pictures": ["t000.png"]}).status == 400
    assert (
        client.post("/api/tags/edit", {"action": "add", "tags": [1], "pictures": ["t000.png"]}).status == 400
    )
    trigger_on_reg = client.post(
        "/api/tags/edit", {"action": "add", "tags": ["mzh_style"], "pictures": ["r000.png"], "set": "reg"}
    )
    assert trigger_on_reg.status == 400 and "T3" in trigger_on_reg.json["error"]
    assert caption_bytes(ui_project) == before


def test_stats_and_check_report(ui_project, serve):
    client = serve(ui_project.root)
    assert len(client.get("/api/tags/stats?top=2").json["tags"]) == 2
    assert client.get("/api/tags/stats?top=many").status == 400
    stats = client.get("/api/tags/stats").json
    assert stats["sets"] == ["target", "reg"] and stats["captioned"] == {"target": 4, "reg": 3}
    first = {t["tag"]: t for t in stats["tags"]}
    assert first["mzh_style"]["target"] == 4 and first["mzh_style"]["reg"] == 0
    report = client.get("/api/check").json
    assert 0 <= report["coverage"]["share"] <= 1
    assert (ui_project.root / "reports" / "check.json").is_file()
    assert all(isinstance(f["files"], list) for f in report["findings"])


# --- tagging ---------------------------------------------------------------------------------------
def test_preview_follows_the_threshold_and_writes_nothing(ui_project, serve):
    client = serve(ui_project.root)
    before = caption_bytes(ui_project)
    toml = ui_project.config_path.read_bytes()
    same = client.get("/api/tag/preview").json["sets"]["target"]
    assert same["threshold"] == 0.5 and same["changed"] == 0
    lower = client.get("/api/tag/preview?target=0.4").json["sets"]["target"]
    assert lower["changed"] == 4  # looking_at_viewer (≈ 0.45) joins every target caption
    assert all(
        "looking at viewer" in row["preview"] and row["preview"][0] == "mzh_style"
        for row in lower["pictures"]
    )
    assert caption_bytes(ui_project) == before and ui_project.config_path.read_bytes() == toml


def test_writing_thresholds_updates_gafu_toml_and_captions(ui_project, serve):
    client = serve(ui_project.root)
    result = client.post("/api/tag/thresholds", {"target": 0.4}).json
    assert result["rethreshold"] and result["sets"]["target"]["tagged"] == 4
    assert load_config(ui_project.config_path).tag.target.threshold == 0.4
    caption = read_caption(ui_project.pictures("target")[0].caption_path).tags
    assert "looking at viewer" in caption
    assert client.get("/api/tag/preview").json["sets"]["target"]["changed"] == 0


def test_a_bad_threshold_is_refused_next_to_its_field(ui_project, serve):
    client = serve(ui_project.root)
    toml = ui_project.config_path.read_bytes()
    reply = client.post("/api/tag/thresholds", {"target": 1.5})
    assert reply.status == 400 and "target" in reply.json["fields"] and "T2" in reply.json["error"]
    assert client.get("/api/tag/preview?reg=zero").status == 400
    assert ui_project.config_path.read_bytes() == toml


def test_tagger_runs_in_the_background_with_progress(ui_project, serve):
    import shutil

    shutil.rmtree(ui_project.tag_scores_dir)  # so every picture goes through the model again
    client = serve(ui_project.root)
    started = client.post("/api/tag/run", {"mode": "overwrite"})
    assert started.status == 200
    wait_for(lambda: client.get("/api/tag/status").json["state"] != "running")
    status = client.get("/api/tag/status").json
    assert status["state"] == "done" and status["done"] == status["total"] == 7
    assert status["tagger"] and status["result"]["model_pictures"] == 7
    assert client.post("/api/tag/run", {"mode": "everything"}).status == 400


# --- plan ---------------------------------------------------------------------------------------------
def test_plan_shows_values_sources_and_the_network(ui_project, serve):
    client = serve(ui_project.root)
    data = client.get("/api/plan?vram=12").json
    assert data["error"] is None
    assert (ui_project.root / "reports" / "plan.json").is_file()  # as `gafu plan` writes it
    plan = data["plan"]
    assert plan["batch"]["epochs"] == 200 and plan["sources"]["batch.epochs"] == "recipe P1"
    assert plan["network"]["summary"]["file_mb"]["fp16"] > 0
    names = {f["name"]: f for f in data["fields"]}
    assert names["train.epochs"]["kind"] == "int" and names["train.optimizer"]["kind"] == "choice"
    assert names["sample.weights"]["kind"] == "floats" and names["sample.prompts"]["kind"] == "lines"


def test_overrides_are_written_to_gafu_toml_and_used_by_the_plan(ui_project, serve):
    client = serve(ui_project.root)
    values = {
        "train.epochs": "20",
        "network.factor": "4",
        "sample.weights": "1.0, 0.5",
        "train.optimizer": "adamw",
    }
    assert client.post("/api/plan/overrides", {"values": values}).status == 200
    config = load_config(ui_project.config_path)
    assert config.train.epochs == 20 and config.network.factor == 4 and config.sample.weights == [1.0, 0.5]
    plan = client.get("/api/plan").json["plan"]
    assert plan["batch"]["epochs"] == 20 and plan["sources"]["batch.epochs"] == "gafu.toml [train] epochs"
    client.post("/api/plan/overrides", {"values": {"train.v_parameterization": "true"}})
    unset = client.post("/api/plan/overrides", {"values": {"train.epochs": ""}})
    assert unset.status == 200 and load_config(ui_project.config_path).train.epochs == 200


@pytest.mark.parametrize(
    ("values", "field", "words"),
    [
        ({"train.epochs": "0"}, "train.epochs", "at least 1 epoch"),
        ({"train.epochs": "ten"}, "train.epochs", "not a valid int"),
        ({"train.unet_lr": "true"}, "train.unet_lr", "must be a number"),
        ({"train.caption_dropout_rate": "0.1"}, "train.caption_dropout_rate", "P7"),
        ({"train.optimizer": "lion"}, "train.optimizer", "is not one of"),
        ({"network.factor": "3"}, "network.factor", "power of two"),
        ({"train.v_parameterization": "true"}, "train.v_parameterization", "P9"),
        ({"train.epochz": "3"}, "train.epochz", "not a setting"),
    ],
)
def test_an_invalid_override_is_refused_next_to_its_field(ui_project, serve, values, field, words):
    client = serve(ui_project.root)
    toml = ui_project.config_path.read_bytes()
    reply = client.post("/api/plan/overrides", {"values": {"train.seed": "7", **values}})
    assert reply.status == 400
    assert list(reply.json["fields"]) == [field] and words in reply.json["fields"][field]
    assert ui_project.config_path.read_bytes() == toml  # nothing written, not even the valid seed


def test_overrides_need_a_values_object(ui_project, serve):
    client = serve(ui_project.root)
    assert client.post("/api/plan/overrides", {"values": ["train.epochs"]}).status == 400


# --- training (the stand-in trainer keeps gafu train's contract) ------------------------------
def test_train_runs_detached_streams_progress_and_shows_grids(ui_project, serve, monkeypatch):
    monkeypatch.setenv("FAKE_STEP_SECONDS", "0.05")
    client = serve(ui_project.root)
    pid = client.post("/api/train/start").json["pid"]
    if hasattr(os, "getsid"):
        assert (
            os.getsid(pid) == pid
        )  # a session of its own: Ctrl-C in the server's terminal does not reach it
    wait_for(lambda: not client.get("/api/train/status").json["running"])
    stream = client.get("/api/train/events?once=1").body.decode()
    events = [line for line in stream.splitlines() if line.startswith('data: {"event"')]
    kinds = [line.split('"event": "')[1].split('"')[0] for line in events]
    assert kinds[0] == "start" and kinds.count("step") == 6 and kinds[-1] == "done"
    assert kinds.count("save") == 2 and kinds.count("sample") == 2
    last_id = [line for line in stream.splitlines() if line.startswith("id: ")][-3]
    resumed = client.get("/api/train/events?once=1", headers={"Last-Event-ID": last_id[4:]}).body.decode()
    assert client.get("/api/train/events?once=1", headers={"Last-Event-ID": "x"}).status == 200
    assert resumed.count("event: progress") == 2  # only what came after that event
    outputs = client.get("/api/outputs").json
    assert [f["epoch"] for f in outputs["lokr"]] == [1, 2, None]  # None: the final file
    assert [g["epoch"] for g in outputs["grids"]] == [1, 2]
    assert client.get(outputs["grids"][0]["grids"][0]).headers["Content-Type"] == "image/png"


def test_starting_training_twice_is_refused(ui_project, serve, monkeypatch):
    monkeypatch.setenv("FAKE_STEP_SECONDS", "0.3")
    client = serve(ui_project.root)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock = ui_project.root / "output" / "train.lock"
        lock.parent.mkdir(parents=True, exist_ok=True)
        lock.write_text(str(holder.pid), encoding="utf-8")
        reply = client.post("/api/train/start")
        assert (
            reply.status == 409
            and "train.lock" in reply.json["error"]
            and str(holder.pid) in reply.json["error"]
        )
        assert client.get("/api/train/status").json["running"] is True
    finally:
        holder.kill()
        holder.wait()
    assert lock.exists()  # stale now: its process is gone, so a new run may take it over
    assert client.post("/api/train/start").status == 200
    second = client.post("/api/train/start")  # our own child is still starting or running
    assert second.status == 409 and "already going" in second.json["error"]


def test_stop_asks_the_trainer_to_save_and_stop(ui_project, serve, monkeypatch):
    monkeypatch.setenv("FAKE_STEP_SECONDS", "0.3")
    monkeypatch.setenv("FAKE_EPOCHS", "50")
    client = serve(ui_project.root)
    assert client.post("/api/train/stop").status == 409  # nothing running
    client.post("/api/train/start")
    wait_for(lambda: b'"event": "step"' in client.get("/api/train/events?once=1").body)
    assert client.post("/api/train/stop").json["stop"] == "output/STOP"
    wait_for(lambda: not client.get("/api/train/status").json["running"])
    assert b'"event": "stopped"' in client.get("/api/train/events?once=1").body
    assert not (ui_project.root / "output" / "STOP").exists()


def test_a_training_run_outlives_the_server(ui_project, serve, monkeypatch):
    monkeypatch.setenv("FAKE_STEP_SECONDS", "0.3")
    monkeypatch.setenv("FAKE_EPOCHS", "50")
    first = serve(ui_project.root)
    pid = first.post("/api/train/start").json["pid"]
    process = first.server.api.trainer.process
    first.server.shutdown()
    first.server.server_close()
    wait_for(lambda: (ui_project.root / "output" / "train.lock").exists())
    assert process.poll() is None and pid_running(pid)
    second = serve(ui_project.root)  # a restarted server finds the run through the lock
    assert (
        second.get("/api/train/status").json["running"] and second.get("/api/train/status").json["pid"] == pid
    )
    assert second.post("/api/train/start").status == 409
    second.post("/api/train/stop")
    assert process.wait(timeout=30) == 0


def _train_stage(client) -> tuple[str, str]:
    stage = {s["name"]: s for s in client.get("/api/state").json["stages"]}["train"]
    return stage["status"], stage["detail"]


def test_a_saved_run_offers_resume_and_start_over_and_a_refused_start_says_why(
    ui_project, serve, monkeypatch
):
    monkeypatch.setenv("FAKE_STEP_SECONDS", "0.2")
    monkeypatch.setenv("FAKE_EPOCHS", "20")  # 60 steps: long enough to be stopped
    client = serve(ui_project.root)
    client.post("/api/train/start")
    wait_for(lambda: b'"event": "step"' in client.get("/api/train/events?once=1").body)
    assert client.post("/api/train/stop").status == 200
    monkeypatch.setenv("FAKE_STEP_SECONDS", "0.01")  # the runs started next go fast
    wait_for(lambda: not client.get("/api/train/status").json["running"])
    saved = client.get("/api/train/status").json["run"]
    step = saved["saved_step"]
    assert saved["resumable"] and not saved["finished"] and saved["total_steps"] == 60 and step < 60
    # The badge says the run stopped (not "todo"), and its stop file is a step, not the final file.
    assert _train_stage(client) == ("partial", f"stopped at step {step} of 60: resume or start over")
    lokr = client.get("/api/outputs").json["lokr"]
    assert (lokr[-1]["kind"], lokr[-1]["label"]) == ("step", f"step {step}")
    assert "final" not in [f["label"] for f in lokr]
    refused = client.post("/api/train/start", {"mode": "new"})
    assert refused.status == 409
    assert f"holds a stopped run saved at step {step}" in refused.json["error"]
    assert "--resume" in refused.json["error"] and "--restart" in refused.json["error"]
    assert client.post("/api/train/start", {"mode": "resume"}).status == 200
    wait_for(lambda: client.get("/api/train/status").json["run"]["finished"])
    wait_for(lambda: not client.get("/api/train/status").json["running"])
    assert (
        client.post("/api/train/start", {"mode": "resume"})
        .json["error"]
        .startswith(f"the run in {ui_project.root / 'output'} is already finished")
    )
    assert "holds a finished run" in client.post("/api/train/start").json["error"]
    first_run = sorted(p.name for p in (ui_project.root / "output").glob("*.safetensors"))
    assert client.post("/api/train/start", {"mode": "restart"}).status == 200
    wait_for(lambda: not client.get("/api/train/status").json["running"])
    runs = list((ui_project.root / "output" / "runs").iterdir())
    assert len(runs) == 1 and sorted(p.name for p in runs[0].glob("*.safetensors")) == first_run
    assert client.post("/api/train/start", {"mode": "later"}).status == 400


def test_a_run_that_fails_as_it_starts_reports_its_error(ui_project, serve, monkeypatch):
    monkeypatch.setenv("FAKE_FAIL", "the model file is truncated")
    client = serve(ui_project.root)
    assert client.post("/api/train/start").status == 200
    wait_for(lambda: client.get("/api/train/status").json["ended"] is not None)
    ended = client.get("/api/train/status").json["ended"]
    assert ended["returncode"] == 2 and ended["error"] == "the model file is truncated"
    assert not (ui_project.root / "output" / "logs" / "ui-train.log").exists()  # kept out of output/


def test_stages_are_not_stale_after_an_undo_restored_their_inputs(ui_project, serve):
    client = serve(ui_project.root)
    assert client.get("/api/check").status == 200
    assert client.get("/api/plan").json["error"] is None

    def status() -> dict[str, str]:
        return {s["name"]: s["status"] for s in client.get("/api/state").json["stages"]}

    assert status()["check"] == status()["plan"] == "done"
    target = [p.path.relative_to(ui_project.root).as_posix() for p in ui_project.pictures("target")]
    time.sleep(0.05)  # the edit is newer than the reports on any file system clock
    edit = {"action": "add", "tags": ["red scarf"], "pictures": target[:1]}
    assert client.post("/api/tags/edit", edit).status == 200
    assert status()["check"] == status()["plan"] == "stale"
    assert client.post("/api/tags/undo", {}).status == 200
    assert status()["check"] == status()["plan"] == "done"  # the captions are the ones they were made from


# --- sampling -------------------------------------------------------------------------------------------
def test_sample_refuses_files_that_are_not_lokr_outputs(ui_project, serve):
    client = serve(ui_project.root)
    for name in ["nothing.safetensors", "../gafu.toml", "../../etc/passwd", "/etc/passwd"]:
        assert client.post("/api/sample", {"lokr": name}).status == 404, name
    (ui_project.root / "output").mkdir(exist_ok=True)
    (ui_project.root / "output" / "notes.txt").write_text("x", encoding="utf-8")
    assert client.post("/api/sample", {"lokr": "notes.txt"}).status == 404
    assert client.get("/api/sample/status").json == {"state": "idle"}


@pytest.mark.slow
def test_sample_renders_a_grid_of_a_lokr_file_with_gafu_sample(sample_project, serve):
    client = serve(sample_project.root)
    assert client.post("/api/sample", {"lokr": "mzh-e000001.safetensors", "weights": "0, 1"}).status == 200
    assert client.post("/api/sample", {"lokr": "mzh-e000002.safetensors"}).status == 409  # one at a time
    wait_for(lambda: client.get("/api/sample/status").json["state"] != "running", seconds=240)
    status = client.get("/api/sample/status").json
    assert status["state"] == "done", status["log"]
    outputs = client.get("/api/outputs").json
    group = next(g for g in outputs["grids"] if g["name"] == "mzh-e000001")
    assert group["epoch"] == 1 and len(group["grids"]) == 2  # one grid per default prompt
    assert all("/grid-" in url for url in group["grids"])  # single pictures are not listed
    assert client.get(group["grids"][0]).headers["Content-Type"] == "image/png"
    assert outputs["index"] == "/files/output/samples/index.html"


def test_outputs_carry_the_style_probes_figures_of_each_file(sample_project, serve):
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from gafu.eval.training import METADATA_KEY

    path = sample_project.output_dir / "mzh-e000002.safetensors"
    with safe_open(str(path), "pt") as handle:
        metadata = dict(handle.metadata())
    figures = {"fit": 0.05, "leakage": 0.01, "trigger_share": 0.8, "drift": 0.002}
    metadata[METADATA_KEY] = json.dumps({"weight": 1.0, **figures})
    save_file(load_file(str(path)), str(path), metadata)
    files = serve(sample_project.root).get("/api/outputs").json["lokr"]
    assert [f["figures"] for f in files] == [[], [{"weight": 1.0, "source": "at its save", **figures}]]


def test_sample_bad_requests(sample_project, serve):
    client = serve(sample_project.root)
    assert client.post("/api/sample", {"lokr": "mzh-e000001.safetensors", "weights": "1,lots"}).status == 400
    assert client.post("/api/sample", {"epochs": "1,2"}).status == 400
    assert client.post("/api/sample", {"epochs": [9]}).status == 200  # gafu sample itself names the problem
    wait_for(lambda: client.get("/api/sample/status").json["state"] != "running", seconds=120)
    status = client.get("/api/sample/status").json
    assert status["state"] == "failed" and status["returncode"] == 2
    assert "no LoKr for epoch 9" in status["log"]


# --- files and guards --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path",
    [
        "/files/../../etc/passwd",
        "/files/%2e%2e/%2e%2e/etc/passwd",
        "/files/..%2f..%2fetc%2fpasswd",
        "/files/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
        "/files/dataset/../../../etc/passwd",
        "/files//etc/passwd",
        "/files/%2fetc%2fpasswd",
        "/files/..%5c..%5cetc%5cpasswd",
        "/files/C:%5cWindows%5cwin.ini",
        "/files/%252e%252e/%252e%252e/etc/passwd",
        "/files/gafu.toml%00.png",
        "/thumb/../../etc/passwd",
        "/thumb/%2e%2e/%2e%2e/etc/passwd",
    ],
)
def test_no_file_outside_the_project_is_served(ui_project, serve, path):
    client = serve(ui_project.root)
    reply = client.get(path)
    assert reply.status == 404 and b"root:" not in reply.body


def test_links_out_of_the_project_are_refused(ui_project, serve, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("secret", encoding="utf-8")
    try:
        (ui_project.root / "out.txt").symlink_to(secret)
        (ui_project.root / "outdir").symlink_to(tmp_path, target_is_directory=True)
        (ui_project.root / "in.toml").symlink_to(ui_project.config_path)
    except OSError:
        pytest.skip("this system cannot make symbolic links")
    client = serve(ui_project.root)
    assert client.get("/files/out.txt").status == 404
    assert client.get("/files/outdir/secret.txt").status == 404
    assert client.get("/files/in.toml").status == 200


def test_project_files_and_thumbnails_are_served(ui_project, serve):
    client = serve(ui_project.root)
    name = client.get("/api/pictures").json["pictures"][0]["name"]
    picture = client.get("/files/" + name)
    assert picture.status == 200 and picture.body == (ui_project.root / name).read_bytes()
    thumb = client.get("/thumb/" + name)
    assert thumb.headers["Content-Type"] == "image/jpeg" and thumb.body[:2] == b"\xff\xd8"
    assert client.get("/thumb/" + name).body == thumb.body  # from the cache the second time
    assert client.get("/thumb/gafu.toml").status == 404  # inside the project, but not a picture
    html = ui_project.root / "output" / "samples" / "index.html"
    html.parent.mkdir(parents=True)
    html.write_text("<script>alert(1)</script>", encoding="utf-8")
    assert client.get("/files/output/samples/index.html").headers["Content-Security-Policy"] == "sandbox"


def test_a_post_must_send_json(ui_project, serve):
    client = serve(ui_project.root)
    form = client.request(
        "POST", "/api/tags/undo", b"x=1", {"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert form.status == 400 and "application/json" in form.json["error"]
    assert (
        client.request("POST", "/api/tags/undo", b"[1]", {"Content-Type": "application/json"}).status == 400
    )
    assert (
        client.request("POST", "/api/tags/undo", b"{nope", {"Content-Type": "application/json"}).status == 400
    )
    assert client.get("/api/tags/undo").status == 405
    assert client.post("/api/state").status == 405


def test_a_foreign_host_name_is_refused(ui_project, serve):
    client = serve(ui_project.root)
    assert client.get("/api/state", headers={"Host": "evil.example:7860"}).status == 403
    assert client.get("/api/state", headers={"Host": f"localhost:{client.port}"}).status == 200


def test_local_mode_refuses_other_machines():
    local = UiSettings()
    assert refusal(local, "127.0.0.1", "127.0.0.1:7860", [None]) is None
    assert refusal(local, "::1", "[::1]:7860", [None]) is None
    assert refusal(local, "192.168.1.20", "127.0.0.1:7860", [None])[0] == 403
    remote = UiSettings(token="abc", local_only=False)
    assert refusal(remote, "192.168.1.20", "box:7860", ["abc"]) is None
    assert refusal(remote, "192.168.1.20", "box:7860", [None, "abd"])[0] == 401


def test_with_host_every_request_needs_the_token(ui_project, serve):
    client = serve(ui_project.root, remote=True)
    token = client.server.settings.token
    assert token and len(token) >= 20
    for path in ["/", "/api/state", "/files/gafu.toml", "/api/train/events?once=1", "/static/app.js"]:
        assert client.get(path).status == 401, path
        assert client.get(path + ("&" if "?" in path else "?") + "token=wrong").status == 401, path
    first = client.get(f"/?token={token}")
    assert first.status == 200
    cookie = first.headers["Set-Cookie"].split(";")[0]
    assert "HttpOnly" in first.headers["Set-Cookie"]
    assert client.get("/api/state", headers={"Cookie": cookie}).status == 200
    assert client.get("/api/train/events?once=1", headers={"Cookie": cookie}).status == 200
    assert client.get("/api/state", headers={"X-Gafu-Token": token}).status == 200
    assert client.post("/api/tags/undo", headers={"Cookie": cookie}).status == 200


# --- the command ------------------------------------------------------------------------------------
def test_gafu_ui_command_serves_the_project(ui_project):

    env = gafu_env()
    command = [sys.executable, "-m", "gafu", "ui", str(ui_project.root), "--port", "0", "--host", "127.0.0.1"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    try:
        line = process.stdout.readline()
        assert "gafu ui for" in line and "?token=" in line
        url = line.split(" at ")[1].strip()
        import urllib.request

        with urllib.request.urlopen(url.replace("/?", "/api/state?"), timeout=30) as response:
            assert response.status == 200
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(url.split("?")[0] + "api/state", timeout=30)
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_gafu_ui_command_names_a_missing_project(tmp_path):

    env = gafu_env()
    done = subprocess.run(
        [sys.executable, "-m", "gafu", "ui", str(tmp_path / "nope")], capture_output=True, text=True, env=env
    )
    assert done.returncode == 2 and "no such project folder" in done.stderr


def test_a_port_in_use_is_a_clear_error(ui_project):
    import socket

    from gafu.errors import GafuError
    from gafu.ui.server import make_server

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(GafuError, match=f"cannot listen on 127.0.0.1:{port}.*--port"):
            make_server(ui_project.root, "127.0.0.1", port)


def test_odd_file_names_keep_working_urls(ui_project, serve):
    path = add_prepared_picture(ui_project, "target", "a #1 100%.png", (200, 30, 30))
    path.with_suffix(".txt").write_text("mzh_style, red theme", encoding="utf-8")
    client = serve(ui_project.root)
    picture = next(p for p in client.get("/api/pictures").json["pictures"] if p["name"].endswith("100%.png"))
    assert "#" not in picture["url"] and "%25" in picture["url"]
    assert client.get(picture["url"]).body == path.read_bytes()
    assert client.get(picture["thumb"]).headers["Content-Type"] == "image/jpeg"


@pytest.mark.slow
def test_stop_and_start_twice_with_the_real_trainer(train_project, serve):
    project = train_project(n_target=2, n_reg=2, epochs=50)
    client = serve(project.root, real_trainer=True)
    started = client.post("/api/train/start")
    assert started.status == 200
    assert client.post("/api/train/start").status == 409
    wait_for(lambda: b'"event": "step"' in client.get("/api/train/events?once=1").body, seconds=240)
    lock = project.output_dir / "train.lock"
    assert lock.read_text(encoding="utf-8").strip() == str(started.json["pid"])
    assert client.post("/api/train/stop").status == 200
    assert client.server.api.trainer.process.wait(timeout=240) == 0
    events = client.get("/api/train/events?once=1").body.decode()
    assert '"event": "stopped"' in events and not lock.exists()
    assert not (project.output_dir / "STOP").exists()  # the trainer took the request
    assert list(project.output_dir.glob("*.safetensors"))  # it saved before stopping
    assert not client.get("/api/train/status").json["running"]
