"""A real matrix on one host: three cells of the distro kernel booted in
parallel under QEMU (1 vCPU each on a 2-core host), run twice, then
`lab report` on the second run compares it with the first."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime

from .conftest import REPO

JOB = """
name: matrix-it
image: debian-bookworm
machine: {cpus: 1, memory_mb: 1024, nvme_mb: 256}
timeouts: {boot: 240, workload: 300}
kernels:
  distro: distro
workloads:
  fio:
    - fio: {targets: [nvme], engines: [libaio], size_mb: 8}
  uname:
    - shell: {command: "uname -r > /tmp/u; cat /tmp/u", case: uname}
  pins:
    - shell: {command: "grep ^nr_foll_pin_ /proc/vmstat", case: vmstat}
"""


def lab(*args, timeout=900):
    return subprocess.run([sys.executable, "-m", "lab.cli", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO)


def overlapping(suites) -> bool:
    spans = sorted((datetime.fromisoformat(s["properties"]["machine_started"]),
                    datetime.fromisoformat(s["properties"]["machine_stopped"]))
                   for s in suites)
    return any(b[0] < a[1] for a, b in zip(spans, spans[1:]))


def test_three_cells_in_parallel_then_again_then_report(image, distro, tmp_path):
    job = tmp_path / "matrix.yaml"
    job.write_text(JOB)
    r = lab("matrix", str(job), "--list")
    assert r.returncode == 0 and r.stdout.split()[5:8] == [
        "distro.fio", "distro", "(distro)"], r.stdout

    first, second = tmp_path / "run1", tmp_path / "run2"
    r = lab("run", str(job), "-o", str(first))
    assert r.returncode == 0, r.stderr[-4000:]
    s1 = json.loads((first / "summary.json").read_text())
    assert s1["state"] == "finished" and s1["exit_code"] == 0
    assert sorted(x["name"] for x in s1["suites"]) == [
        "distro.fio#1", "distro.pins#1", "distro.uname#1"]
    assert overlapping(s1["suites"]), "the cells should have run at the same time"
    by_cell = {x["properties"]["cell"]: x for x in s1["suites"]}
    for cell, case in (("distro.fio", "fio.nvme.libaio"), ("distro.uname", "uname"),
                       ("distro.pins", "vmstat")):
        cases = {c["name"]: c for c in by_cell[cell]["cases"]}
        assert cases["boot"]["status"] == "passed" and cases[case]["status"] == "passed"
    # what the guests did: each cell's own directory, the real kernel's release
    uname_out = (first / "distro.uname" / "r1" / "00-shell" / "uname.out").read_text()
    assert uname_out.strip() == distro.release
    assert "nr_foll_pin_acquired" in (
        first / "distro.pins" / "r1" / "00-shell" / "vmstat.out").read_text()

    r = lab("run", str(job), "-o", str(second))
    assert r.returncode == 0, r.stderr[-4000:]
    s2 = json.loads((second / "summary.json").read_text())
    for suite in s2["suites"]:     # an unchanged re-run builds nothing
        assert suite["properties"]["kernel_cache"] == "hit"
        assert suite["properties"]["image_cache"] == "hit"
        assert float(suite["properties"]["image_resolve_s"]) < 1.0
    r = lab("report", str(second), "--format", "json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    cells = {c["id"]: c for c in report["cells"]}
    assert set(cells) == {"distro.fio", "distro.uname", "distro.pins"}
    for c in cells.values():
        assert c["has_previous"] and c["previous_run_id"] == first.name
        assert c["verdict"] == "passed" and c["problems"] == [] and c["gone"] == []
    text = lab("report", str(second)).stdout
    assert "distro.fio" in text and first.name in text
