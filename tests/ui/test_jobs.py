"""The UI's side of the training contract: reading progress.jsonl as it grows, and the trainer's lock."""

from __future__ import annotations

import json
import subprocess
import sys

from gafu.ui.jobs import lock_pid, pid_running, read_events


def test_read_events_leaves_a_line_still_being_written(tmp_path):
    log = tmp_path / "progress.jsonl"
    first = json.dumps({"event": "start", "total_steps": 4}) + "\n"
    log.write_text(first + '{"event": "st', encoding="utf-8")
    events, offset = read_events(log, 0)
    assert [e["event"] for _, e in events] == ["start"] and offset == len(first.encode())
    with log.open("a", encoding="utf-8") as f:
        f.write('ep", "step": 1}\nnot json\n[1]\n')
    events, offset = read_events(log, offset)
    assert [e for _, e in events] == [{"event": "step", "step": 1}]  # damaged lines are passed over
    assert offset == log.stat().st_size
    assert read_events(log, offset) == ([], offset)


def test_read_events_starts_over_when_the_file_is_replaced(tmp_path):
    log = tmp_path / "progress.jsonl"
    log.write_text('{"event": "start"}\n' * 3, encoding="utf-8")
    _, offset = read_events(log, 0)
    log.write_text('{"event": "done"}\n', encoding="utf-8")  # shorter than where we were
    events, _ = read_events(log, offset)
    assert [e["event"] for _, e in events] == ["done"]
    assert read_events(tmp_path / "missing.jsonl", 10) == ([], 0)


def test_lock_pid_reads_a_plain_or_json_lock(tmp_path):
    lock = tmp_path / "train.lock"
    assert lock_pid(lock) is None
    lock.write_text("1234\n", encoding="utf-8")
    assert lock_pid(lock) == 1234
    lock.write_text('{"pid": 99}', encoding="utf-8")
    assert lock_pid(lock) == 99
    lock.write_text("", encoding="utf-8")
    assert lock_pid(lock) is None
    lock.write_text("garbage", encoding="utf-8")
    assert lock_pid(lock) is None


def test_pid_running_tells_a_live_process_from_a_finished_one():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert pid_running(child.pid)
    finally:
        child.kill()
        child.wait()
    assert not pid_running(child.pid) and not pid_running(0)
