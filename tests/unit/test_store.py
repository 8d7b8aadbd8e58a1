"""The run directory's summary.json agrees with the process: null exit code
while running, and a run whose lab died is marked crashed (exit 2) by the
next lab that sees it, its scratch disks removed."""

import json
import os
import subprocess

from lab.results import CaseResult, RunState, Status
from lab.store import RunStore, mark_dead_runs, mark_if_dead


def dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_exit_code_is_null_until_the_run_ends(tmp_path):
    store = RunStore(tmp_path / "r", {"name": "t"})
    store.add(store.suite("s"), CaseResult("boot", Status.PASSED))
    s = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert s["state"] == "running" and s["exit_code"] is None and s["pid"] == os.getpid()
    store.finish(RunState.INTERRUPTED, exit_code=130)
    s = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert (s["state"], s["exit_code"]) == ("interrupted", 130)


def test_a_run_left_running_by_a_dead_lab_is_marked_crashed(tmp_path):
    run = tmp_path / "runs" / "r1"
    store = RunStore(run, {"name": "t"})
    store.add(store.suite("s"), CaseResult("boot", Status.PASSED))
    data = json.loads((run / "summary.json").read_text())
    data["pid"] = dead_pid()
    (run / "summary.json").write_text(json.dumps(data))
    (run / "cell" / "r1" / "disks").mkdir(parents=True)
    (run / "cell" / "r1" / "disks" / "nvme0.img").write_bytes(b"x")
    assert mark_dead_runs(tmp_path / "runs") == [run]
    s = json.loads((run / "summary.json").read_text())
    assert s["state"] == "crashed" and s["exit_code"] == 2 and "marked" in s["crash_note"]
    assert s["suites"][0]["cases"][0]["name"] == "boot"      # what finished is kept
    assert not (run / "cell" / "r1" / "disks").exists()
    assert not mark_if_dead(run)                              # once


def test_a_live_run_is_left_alone(tmp_path):
    store = RunStore(tmp_path / "r", {"name": "t"})
    assert not mark_if_dead(tmp_path / "r")
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["state"] == "running"
    store.finish()


def test_a_reused_pid_is_not_the_lab_that_started_the_run(tmp_path):
    store = RunStore(tmp_path / "r", {"name": "t"})
    data = json.loads((tmp_path / "r" / "summary.json").read_text())
    data["process_start"] = "1"          # our pid, but another process's start time
    (tmp_path / "r" / "summary.json").write_text(json.dumps(data))
    assert mark_if_dead(tmp_path / "r")
    del store
