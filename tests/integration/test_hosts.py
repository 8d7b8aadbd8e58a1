"""`lab hosts run` for real: lab hosts made on this machine (network
namespaces, each with its own sshd on its own address, its own user, lab
cache and work directory; tests/integration/nshosts.py), a 4-cell matrix of
the distro kernel (the smoke job's fio workload in four workload sets) run
across them with ansible, the results fetched and merged; then the same on
three hosts with one host killed (its sshd and every process of its user)
while its cell runs: the others' results are kept and merged, the lost
cell is an infrastructure error naming the host, exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from lab.history import History
from lab.paths import cache_dir

from .conftest import REPO
from .nshosts import NamespaceHosts

JOB = """
name: fanout4
image: debian-bookworm
kernel: distro
machine: {cpus: 1, memory_mb: 1024, nvme_mb: 256}
timeouts: {boot: 240, workload: 300}
workloads:
  libaio:
    - fio: {targets: [nvme], engines: [libaio], size_mb: 8}
  io_uring:
    - fio: {targets: [nvme], engines: [io_uring], size_mb: 8}
  libaio16:
    - fio: {targets: [nvme], engines: [libaio], size_mb: 16}
  io_uring16:
    - fio: {targets: [nvme], engines: [io_uring], size_mb: 16}
"""
CELLS = {"default.libaio", "default.io_uring", "default.libaio16", "default.io_uring16"}


@pytest.fixture
def job(tmp_path):
    p = tmp_path / "fanout4.yaml"
    p.write_text(JOB)
    return p


def hosts(image, distro, count):
    if os.geteuid() != 0:
        pytest.fail("the namespace hosts need root (ip netns, useradd, sshd)")
    return NamespaceHosts(count, cache_from=cache_dir(), image_dir=image.dir,
                          release=distro.release)


def lab_hosts_run(job, inventory, out, **popen):
    argv = [sys.executable, "-m", "lab.cli", "hosts", "run", str(job), "-i", str(inventory),
            "-o", str(out), "--poll", "3", "--timeout", "1200"]
    return subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **popen)


def finish(p, timeout=1500):
    out, err = p.communicate(timeout=timeout)
    return p.returncode, out, err


def test_two_hosts_share_the_matrix_and_merge_it(image, distro, job, tmp_path):
    out = tmp_path / "run"
    t0 = time.monotonic()
    with hosts(image, distro, 2) as hs:
        code, stdout, stderr = finish(lab_hosts_run(job, hs.inventory(), out))
        print(f"two hosts, 4 cells: {time.monotonic() - t0:.0f}s", file=sys.stderr)
    assert code == 0, stderr[-5000:]
    s = json.loads((out / "summary.json").read_text())
    assert s["state"] == "finished" and s["exit_code"] == 0
    assert {c["id"] for c in s["cells"]} == CELLS
    by_host = {h["name"]: h for h in s["hosts"]}
    # equal hosts, equal shares: two cells each, every cell on one host
    assert [len(h["cells"]) for h in by_host.values()] == [2, 2]
    assert sorted(c for h in by_host.values() for c in h["cells"]) == sorted(CELLS)
    assert all(h["state"] == "done" and h["exit_code"] == 0 for h in by_host.values())
    for suite in s["suites"]:
        cases = {c["name"]: c["status"] for c in suite["cases"]}
        assert cases["boot"] == "passed" and all(v == "passed" for v in cases.values()), cases
        assert suite["properties"]["cell"] in by_host[suite["properties"]["host"]]["cells"]
    root = ET.parse(out / "junit.xml").getroot()
    assert len(root) == 4 and root.get("failures") == "0" and root.get("errors") == "0"
    hosts_in_junit = {p.get("value") for p in root.iter("property") if p.get("name") == "host"}
    assert hosts_in_junit == set(by_host)
    # each host's own run directory came back, its workload outputs with it
    for name, h in by_host.items():
        for cell in h["cells"]:
            assert list((out / "hosts" / name / "results" / cell).rglob("*.json")) or \
                list((out / "hosts" / name / "results" / cell).rglob("console.log"))
    # recorded in the history store; lab report reads the merged run
    assert out.name in [r.run_id for r in History(os.environ["LAB_HISTORY"]).runs()]
    r = subprocess.run([sys.executable, "-m", "lab.cli", "report", str(out), "--format",
                        "json"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and {c["id"] for c in json.loads(r.stdout)["cells"]} == CELLS


def test_a_host_lost_mid_run_loses_only_its_own_cells(image, distro, job, tmp_path):
    out = tmp_path / "run"
    with hosts(image, distro, 3) as hs:
        victim = hs.hosts[2]
        p = lab_hosts_run(job, hs.inventory(), out)
        try:
            summary = victim.root / "work" / "runs" / out.name / "results" / "summary.json"
            end = time.monotonic() + 600
            while time.monotonic() < end and p.poll() is None:     # its cell has started
                try:
                    if json.loads(summary.read_text()).get("suites"):
                        break
                except (OSError, ValueError):
                    pass
                time.sleep(0.5)
            assert p.poll() is None, "lab hosts run ended before the host could be lost"
            victim.kill()
            assert victim.pids() == []
            code, stdout, stderr = finish(p)
        finally:
            if p.poll() is None:
                p.kill()
    assert code == 2, stderr[-5000:]
    s = json.loads((out / "summary.json").read_text())
    by_host = {h["name"]: h for h in s["hosts"]}
    lost = by_host[victim.name]
    assert lost["state"] == "lost" and victim.name in stderr
    assert {c["id"] for c in s["cells"]} == CELLS
    suites = {x["properties"]["cell"]: x for x in s["suites"]}
    assert set(suites) == CELLS
    for cell, suite in suites.items():
        statuses = {c["status"] for c in suite["cases"]}
        if cell in lost["cells"]:
            (case,) = suite["cases"]
            assert case["status"] == "error" and case["kind"] == "infra"
            assert f"host {victim.name} ({victim.address})" in case["message"]
            assert "lost mid-run" in case["message"]
        else:                      # the live hosts' results, kept and merged
            assert statuses == {"passed"}, suite
            assert by_host[suite["properties"]["host"]]["state"] == "done"
    root = ET.parse(out / "junit.xml").getroot()
    assert root.get("errors") == "1" and len(root) == 4
    assert out.name in [r.run_id for r in History(os.environ["LAB_HISTORY"]).runs()]


def test_hosts_without_qemu_are_named_and_nothing_runs(image, distro, job, tmp_path):
    """A host whose lab finds no qemu (here: a PATH without it) is left out,
    named with what to install; with no usable host left, exit 2."""
    with hosts(image, distro, 1) as hs:
        h = hs.hosts[0]
        env = dict(hs.inventory_env(h), PATH="/nonexistent")
        inv = hs.inventory(**{h.name: {"lab_environment": env}})
        code, _, stderr = finish(lab_hosts_run(job, inv, tmp_path / "run"), timeout=300)
    assert code == 2
    assert f"{h.name} ({h.address}): no qemu-system-x86_64" in stderr
    assert "apt-get install qemu-system-x86" in stderr


def test_a_host_nobody_answers_at_is_named(job, tmp_path):
    """An unreachable host (nothing listens on its port): exit 2, the host
    and ssh's reason named, before anything runs."""
    inv = tmp_path / "inv.yml"
    inv.write_text("all:\n  hosts:\n    deadhost:\n      ansible_host: 127.0.0.1\n"
                   "      ansible_port: 9\n      ansible_ssh_common_args: "
                   "-o StrictHostKeyChecking=no -o ConnectTimeout=5\n")
    p = lab_hosts_run(job, inv, tmp_path / "run")
    code, _, stderr = finish(p, timeout=300)
    assert code == 2
    assert "deadhost (127.0.0.1): unreachable" in stderr and "refused" in stderr
    assert not Path(tmp_path / "run" / "summary.json").exists()
