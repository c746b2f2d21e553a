"""The UI's curation endpoints over HTTP: pictures set aside and back (D1), a regularization pick (D2, D3)."""

from __future__ import annotations

import time

from gafu.config import load_config


def wait_for(client, path, seconds=120):
    deadline = time.monotonic() + seconds
    while True:
        progress = client.get(path).json
        if progress["state"] != "running":
            return progress
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_outliers_are_set_aside_and_brought_back(drift_project, serve):
    client = serve(drift_project.root)
    report = client.get("/api/check").json
    style = [f for f in report["findings"] if f["code"] == "style-groups"]
    assert len(style) == 1 and sorted(style[0]["files"]) == sorted(drift_project.drifted)
    assert style[0]["details"]["differences"][0]["words"] == "more muted"

    result = client.post("/api/aside", {"pictures": style[0]["files"]}).json
    assert sorted(row["picture"] for row in result["set_aside"]) == sorted(drift_project.drifted)
    aside = client.get("/api/aside").json["pictures"]
    assert sorted(p["name"] for p in aside) == sorted(drift_project.drifted)
    assert all(client.get(p["thumb"]).status == 200 for p in aside)  # thumbnails from set-aside/
    assert len(client.get("/api/pictures?set=target").json["pictures"]) == 8
    assert not [f for f in client.get("/api/check").json["findings"] if f["code"] == "style-groups"]

    restored = client.post("/api/aside/restore", {"pictures": [p["name"] for p in aside]}).json
    assert len(restored["restored"]) == 4 and client.get("/api/aside").json["pictures"] == []
    assert load_config(drift_project.config_path).sources.exclude.target == []
    assert len(client.get("/api/pictures?set=target").json["pictures"]) == 12


def test_bad_aside_requests_are_refused_with_the_reason(drift_project, serve):
    client = serve(drift_project.root)
    assert client.post("/api/aside", {"pictures": "not a list"}).status == 400
    reply = client.post("/api/aside", {"pictures": ["dataset/train/2_mzh_style/nothing.png"]})
    assert reply.status == 400 and "not a picture `gafu prep` made" in reply.json["error"]
    not_aside = {"pictures": ["dataset/train/2_mzh_style/t000.png"]}
    assert client.post("/api/aside/restore", not_aside).status == 400


def test_regularization_pick_runs_with_progress_and_writes_gafu_toml(drift_project, serve):
    client = serve(drift_project.root)
    assert client.post("/api/reg/pick", {"pool": ""}).status == 400
    assert client.post("/api/reg/pick", {"pool": str(drift_project.pool), "count": "0"}).status == 400
    assert client.post("/api/reg/write", {}).status == 400  # nothing picked yet
    started = client.post("/api/reg/pick", {"pool": str(drift_project.pool), "count": 5})
    assert started.status == 200 and started.json["state"] == "running"
    done = wait_for(client, "/api/reg/status")
    assert done["state"] == "done" and done["total"] == 12 and done["done"] == 12
    result = done["result"]
    assert len(result["picks"]) == 5 and result["coverage_after"] >= result["coverage_before"]
    written = client.post("/api/reg/write", {}).json
    config = load_config(drift_project.config_path)
    assert config.sources.reg == drift_project.pool.resolve().as_posix()
    assert sorted(config.sources.include.reg) == sorted(p["picture"] for p in result["picks"])
    assert written["include"] == 5
