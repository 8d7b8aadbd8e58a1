"""A real hung task through the real runner: a write to a frozen ext4 blocks
in D state, the hung-task detector reports it, and lab must report a
deadlock with the blocked stack within the hung-task timeout + 30 s, long
before the workload's own timeout. Thawing makes the guest usable again; a
slow-but-progressing command is a timeout, not a deadlock."""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET

import pytest
import yaml

from lab.job import load_job
from lab.runner import run_job

pytestmark = pytest.mark.integration

HUNG_TASK_TIMEOUT = 5
MNT = "/mnt/lab-frozen"
FREEZE_AND_WRITE = (f"mkfs.ext4 -q -F /dev/nvme0n1 && mkdir -p {MNT} && "
                    f"mount /dev/nvme0n1 {MNT} && fsfreeze -f {MNT} && "
                    f"echo lab-test: frozen > /dev/kmsg && "
                    f"dd if=/dev/zero of={MNT}/f bs=4k count=1 conv=fsync")
THAW = (f"fsfreeze -u {MNT} && for i in $(seq 100); do pgrep -x dd >/dev/null || break; "
        f"sleep 0.1; done; ! pgrep -x dd && test -s {MNT}/f && umount {MNT} && echo usable")


def test_frozen_fs_is_a_deadlock_then_thaw_and_slow_is_a_timeout(image, tmp_path):
    job = {
        "name": "deadlock", "kernel": "distro", "image": "debian-bookworm",
        "machine": {"memory_mb": 1024, "nvme_mb": 256, "pmem_mb": 0},
        "hung_task_timeout": HUNG_TASK_TIMEOUT, "timeouts": {"boot": 240, "workload": 300},
        "workloads": [
            {"name": "shell", "timeout": 300,
             "options": {"case": "frozen-write", "command": FREEZE_AND_WRITE}},
            {"name": "shell", "timeout": 60, "options": {"case": "thaw", "command": THAW}},
            {"name": "shell", "timeout": 4, "options": {"case": "slow", "command": "sleep 30"}},
        ],
    }
    path = tmp_path / "deadlock.yaml"
    path.write_text(yaml.safe_dump(job))
    out = tmp_path / "run"
    start = time.monotonic()
    code = run_job(load_job(path), out)
    elapsed = time.monotonic() - start
    assert code == 1
    summary = json.loads((out / "summary.json").read_text())
    cases = {c["name"]: c for s in summary["suites"] for c in s["cases"]}

    dl = cases["frozen-write"]
    assert dl["status"] == "failed" and dl["kind"] == "deadlock", dl["message"]
    assert "dd:" in dl["properties"]["blocked_tasks"]
    # reported (detection + evidence) within the hung-task timeout + 30 s of
    # the command's start, which includes mkfs and mount before the freeze
    reported_after = dl["duration"] + float(dl["properties"]["investigation_s"])
    assert reported_after <= HUNG_TASK_TIMEOUT + 30, reported_after
    assert dl["properties"]["evidence_via"] == "ssh"

    root = ET.parse(out / "junit.xml").getroot()
    tc = next(t for t in root.iter("testcase") if t.get("name") == "frozen-write")
    failure = tc.find("failure")
    assert "deadlock" in failure.get("message")
    assert "stuck in D state: dd:" in failure.get("message")
    text = failure.text or ""
    assert "mnt_want_write" in text or "percpu_rwsem" in text or "sb_start" in text, text[:2000]
    assert "Call Trace" in text or "__schedule" in text

    # the detector's own report is a finding of that workload
    assert any(c["kind"] == "hung-task" and c["classname"] == "shell" for c in cases.values()
               if c["name"].startswith("INFO: task hung"))
    assert (out / "00-shell" / "timeout-evidence.txt").exists()
    assert (out / "00-shell" / "sysrq-t.txt").stat().st_size > 0

    thaw = cases["thaw"]
    assert thaw["status"] == "passed", (thaw["message"], thaw.get("details"))
    slow = cases["slow"]
    assert slow["status"] == "failed" and slow["kind"] == "timeout", slow["message"]
    assert "not stuck" in slow["message"]
    assert elapsed < 240


def test_a_panic_is_a_panic_with_its_report(image, tmp_path):
    job = {"name": "panic", "kernel": "distro", "image": "debian-bookworm",
           "machine": {"memory_mb": 1024, "nvme_mb": 0, "pmem_mb": 0},
           "workloads": [{"shell": {"case": "crash", "command": "echo c > /proc/sysrq-trigger"}},
                         {"shell": {"case": "after", "command": "true"}}]}
    path = tmp_path / "panic.yaml"
    path.write_text(yaml.safe_dump(job))
    assert run_job(load_job(path), tmp_path / "run") == 1
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    cases = [c for s in summary["suites"] for c in s["cases"]]
    kinds = {c["kind"] for c in cases if c["status"] == "failed"}
    assert kinds == {"panic"}
    assert any("sysrq triggered crash" in c["name"] for c in cases)
    after = [c for c in cases if c["name"] == "after"]
    assert [(c["status"], c["kind"]) for c in after] == [("skipped", "not-run")]


def test_evidence_through_the_serial_console(shared_guest):
    """The path taken when SSH is dead: break + sysrq keys on the serial socket."""
    from lab import hang
    text = hang.collect_serial(shared_guest, interval=1.0)
    assert "sysrq: Show Blocked State" in text
    assert "sysrq: Show backtrace of all active CPUs" in text
    assert shared_guest.guest.alive(timeout=15)
