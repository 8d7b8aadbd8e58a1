"""Faults a bad day brings, done for real: the filesystem holding the
results fills up while a workload writes. The run must end with exit 2
within a bounded time, name the full filesystem, keep valid results of what
finished, and leave no qemu behind."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import pytest

from .conftest import REPO

JOB = """
name: full-disk
image: debian-bookworm
machine: {cpus: 1, memory_mb: 1024, nvme_mb: 512}
timeouts: {boot: 240, workload: 600}
workloads:
  - shell: {command: "uname -r", case: before}
  - shell: {command: "dd if=/dev/urandom of=/dev/nvme0n1 bs=1M count=400 oflag=direct",
            case: fill}
  - shell: {command: "true", case: after}
kernel: distro
"""


@pytest.fixture
def small_fs(tmp_path):
    """A 160 MiB tmpfs: room for the guest's root overlay, not for 400 MiB
    written to its NVMe drive (a sparse file in the results directory)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160m", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_full_results_filesystem_is_an_infrastructure_error(image, small_fs, tmp_path):
    job = tmp_path / "full.yaml"
    job.write_text(JOB)
    out = small_fs / "run"
    start = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "lab.cli", "run", str(job), "-o", str(out)],
                       capture_output=True, text=True, timeout=900, cwd=REPO)
    took = time.monotonic() - start
    assert r.returncode == 2, r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    assert took < 600, "the run should end well before the workload's timeout"
    assert "No space left on device" in r.stderr or "no space left" in r.stderr, r.stderr[-2000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("lab: error:") and str(out) in last and "free there" in last
    summary = json.loads((out / "summary.json").read_text())     # valid, what finished kept
    cases = {c["name"]: c for c in summary["suites"][0]["cases"]}
    assert cases["boot"]["status"] == "passed" and cases["before"]["status"] == "passed"
    assert "after" not in cases or cases["after"]["status"] != "passed"
    ET.parse(out / "junit.xml")                            # valid XML
    leftover = subprocess.run(["pgrep", "-f", f"qemu-system.*{out}"], capture_output=True)
    assert leftover.stdout == b""


NETDOWN = """
name: netdown
image: debian-bookworm
machine: {cpus: 1, memory_mb: 1024, nvme_mb: 0}
hung_task_timeout: 10
workloads:
  - shell: {command: "ip link set eth0 down; sleep 60", case: netdown, timeout: 10}
  - shell: {command: "true", case: after}
kernel: distro
"""


def test_guest_network_dropped_evidence_comes_over_the_serial_console(image, tmp_path):
    job = tmp_path / "netdown.yaml"
    job.write_text(NETDOWN)
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "lab.cli", "run", str(job), "-o", str(out)],
                       capture_output=True, text=True, timeout=900, cwd=REPO)
    assert r.returncode == 1, r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["state"] == "finished" and summary["exit_code"] == 1
    cases = summary["suites"][0]["cases"]
    failed = [c for c in cases if c["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["kind"] == "unreachable"
    assert failed[0]["properties"]["evidence_via"].startswith("serial console")
    evidence = (out / "00-shell" / "timeout-evidence.txt").read_text()
    assert "sysrq" in evidence.lower()            # the kernel answered on the console
    # the unreachable guest is replaced: the next workload runs on a fresh boot
    by = {c["name"]: c for c in cases}
    assert by["boot.2"]["status"] == "passed" and "netdown" in by["boot.2"]["properties"]["reason"]
    assert by["after"]["status"] == "passed"
    assert (out / "boot-2" / "console.log").exists()
    ET.parse(out / "junit.xml")
    leftover = subprocess.run(["pgrep", "-f", f"qemu-system.*{out}"], capture_output=True)
    assert leftover.stdout == b""


KILLED = """
name: killed
image: debian-bookworm
machine: {cpus: 1, memory_mb: 1024, nvme_mb: 0}
workloads:
  - shell: {command: "echo started; sleep 120", case: victim, timeout: 300}
  - shell: {command: "true", case: after}
kernel: distro
"""


def test_qemu_killed_mid_workload_is_an_infrastructure_error(image, tmp_path):
    import signal
    job = tmp_path / "killed.yaml"
    job.write_text(KILLED)
    out = tmp_path / "run"
    p = subprocess.Popen([sys.executable, "-m", "lab.cli", "run", str(job), "-o", str(out)],
                         stderr=subprocess.PIPE, text=True, cwd=REPO)
    for line in p.stderr:
        if "workload shell" in line:
            break
    time.sleep(3)
    pids = subprocess.run(["pgrep", "-f", f"qemu-system.*{out}"], capture_output=True,
                          text=True).stdout.split()
    assert len(pids) == 1
    import os
    os.kill(int(pids[0]), signal.SIGKILL)
    err = p.stderr.read()
    assert p.wait(300) == 2, err[-3000:]
    assert "Traceback" not in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["state"] == "finished" and summary["exit_code"] == 2
    cases = {c["name"]: c for c in summary["suites"][0]["cases"]}
    victim = cases["victim"]
    assert victim["status"] == "error" and "qemu exited (code -9" in victim["message"]
    assert cases["after"]["kind"] == "not-run"
    ET.parse(out / "junit.xml")
