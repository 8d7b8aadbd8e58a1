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


def _run(tmp_path, job):
    path = tmp_path / f"{job['name']}.yaml"
    path.write_text(yaml.safe_dump(job))
    out = tmp_path / "run"
    start = time.monotonic()
    code = run_job(load_job(path), out)
    summary = json.loads((out / "summary.json").read_text())
    return code, summary, out, time.monotonic() - start


def _cases(summary):
    return [c for s in summary["suites"] for c in s["cases"]]


def test_stall_deadlock_held_pins_and_a_fresh_boot(image, tmp_path):
    """One guest, in order: a writer blocked (D state) behind a DAX truncate
    that waits for a pin held by a process that never lets go: a stall,
    released by lab ending the pin holder; a process pinning io_uring
    buffers whose writer thread blocks on a frozen filesystem that is never
    thawed: a deadlock, its pins held (not leaked) by the unkillable task,
    and the guest replaced by a fresh boot on which the next workload runs;
    a slow command: a timeout, after which the same guest goes on."""
    job = {
        "name": "verdicts", "kernel": "distro", "image": "debian-bookworm",
        "machine": {"memory_mb": 1024, "nvme_mb": 256, "pmem_mb": 512},
        "hung_task_timeout": HUNG_TASK_TIMEOUT,
        "timeouts": {"boot": 240, "workload": 300, "recovery": 20},
        "workloads": [
            {"name": "pinhold", "timeout": 120, "options": {"hold": 0}},
            {"name": "pinhold", "timeout": 120, "options": {"scenario": "frozen", "pages": 8}},
            {"name": "shell", "options": {"case": "after",
                                          "command": "cat /proc/uptime; ! pgrep -x pinhold"}},
            {"name": "shell", "timeout": 4, "options": {"case": "slow", "command": "sleep 30"}},
            {"name": "shell", "options": {"case": "after-slow", "command": "! pgrep -f '^sleep 30$'"}},
        ],
    }
    code, summary, out, elapsed = _run(tmp_path, job)
    assert code == 1
    cases = _cases(summary)
    by = {}
    for c in cases:
        by.setdefault(c["name"], []).append(c)
    names = [c["name"] for c in cases]

    # 1. a stall: the writer recovered once lab ended the pin holder
    [stall] = by["pinhold.ext4"]
    assert (stall["status"], stall["kind"]) == ("failed", "stall"), stall["message"]
    assert "recovered after lab ended pinhold:" in stall["message"], stall["message"]
    assert "sh:" in stall["properties"]["recovered_tasks"]
    assert stall["properties"]["released_by"].startswith("pinhold:")
    assert float(stall["properties"]["max_blocked_s"]) >= HUNG_TASK_TIMEOUT
    root = ET.parse(out / "junit.xml").getroot()
    tc = next(t for t in root.iter("testcase") if t.get("name") == "pinhold.ext4")
    text = tc.find("failure").text or ""
    assert "ext4_file_write_iter" in text and "recovered after ending pinhold:" in text, text
    assert "1 pin(s) released -> recovered: sh:" in (out / "00-pinhold" / "resolution.txt"
                                                     ).read_text()
    # the holder's one pin was released by ending it: balanced, no leak
    pin_cases = [c for c in cases if c["name"] == "pin-balance"]
    assert (pin_cases[0]["status"], pin_cases[0]["properties"]["pins_acquired"]) == ("passed", "1")

    # 2. a deadlock, shown not to recover; the pins held, not leaked
    [dl] = by["pinhold.frozen"]
    assert (dl["status"], dl["kind"]) == ("failed", "deadlock"), dl["message"]
    assert "did not recover within 20s" in dl["message"], dl["message"]
    assert "pinhold:" in dl["properties"]["blocked_tasks"]
    assert "pinhold" in dl["properties"]["survivors"]
    held = pin_cases[1]
    assert (held["status"], held["kind"]) == ("skipped", "pins-held"), held
    assert "held by live process(es)" in held["message"] and "pinhold" in held["message"]
    assert held["properties"]["pins_held"] == "8"
    assert not any(c["kind"] == "pin-leak" for c in cases)

    # 3. a fresh boot of the same kernel, then the later workloads on it
    [boot2] = by["boot.2"]
    assert boot2["status"] == "passed" and "pinhold.frozen" in boot2["properties"]["reason"]
    assert names.index("pinhold.frozen") < names.index("boot.2") < names.index("after")
    [after] = by["after"]
    assert after["status"] == "passed", (after["message"], after.get("details"))
    uptime = float((out / "02-shell" / "after.out").read_text().split()[0])
    assert uptime < 120                                 # the new guest's
    assert (out / "boot-2" / "console.log").exists()

    # 4. slow is a timeout, its process ended, and the same guest goes on
    [slow] = by["slow"]
    assert (slow["status"], slow["kind"]) == ("failed", "timeout"), slow["message"]
    assert "not stuck" in slow["message"]
    assert by["after-slow"][0]["status"] == "passed"
    assert "boot.3" not in by and summary["suites"][0]["properties"]["boots"] == "2"
    assert summary["state"] == "finished"


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
    # the workload after the panic runs on a fresh boot
    after = [c for c in cases if c["name"] == "after"]
    assert [(c["status"], c["kind"]) for c in after] == [("passed", "")]
    assert any(c["name"] == "boot.2" and c["status"] == "passed" for c in cases)


def test_evidence_through_the_serial_console(shared_guest):
    """The path taken when SSH is dead: break + sysrq keys on the serial socket."""
    from lab import hang
    text = hang.collect_serial(shared_guest, interval=1.0)
    assert "sysrq: Show Blocked State" in text
    assert "sysrq: Show backtrace of all active CPUs" in text
    assert shared_guest.guest.alive(timeout=15)
