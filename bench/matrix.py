#!/usr/bin/env python3
"""Matrix benchmark: how well parallel cells use this host.

Runs a matrix of N distro-kernel cells (1 vCPU each, real QEMU, real
workloads) twice in one go: once as `lab run` does it (cells in parallel
under the scheduler) and once one cell after another (`lab run --cell ID`
for each). For each, it prints the wall time and the busy core-seconds over
the available core-seconds (from /proc/stat, the whole host, so nothing
else should run meanwhile), and the ratio of the wall times.

    python bench/matrix.py [--cells 4] [--order parallel-first|serial-first]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

JOB_HEAD = """
name: bench-matrix
image: debian-bookworm
machine: {cpus: 1, memory_mb: 1024, nvme_mb: 512}
timeouts: {boot: 240, workload: 300}
kernels:
  distro: distro
workloads:
"""
SETS = [
    "  fio{i}:\n    - fio: {{targets: [nvme], engines: [libaio, io_uring], size_mb: 16}}\n",
    "  xfs{i}:\n    - fio: {{targets: [xfs], engines: [libaio], size_mb: 16}}\n",
    "  ext4{i}:\n    - fio: {{targets: [ext4], engines: [io_uring], size_mb: 16}}\n",
    "  sh{i}:\n    - shell: {{command: 'dd if=/dev/zero of=/tmp/x bs=1M count=256 && sync', "
    "case: dd}}\n",
]


def cpu_times() -> tuple[float, float]:
    """(busy, total) seconds of every core since boot, from /proc/stat."""
    fields = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]            # idle + iowait
    total = sum(fields[:8])                 # guest time is already in user
    return (total - idle) / tick, total / tick


def lab(args: list[str], env: dict) -> int:
    r = subprocess.run([sys.executable, "-m", "lab.cli", *args], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stderr[-3000:])
    return r.returncode


def measure(label: str, runs: list[list[str]], env: dict) -> dict:
    b0, t0 = cpu_times()
    w0 = time.monotonic()
    codes = [lab(a, env) for a in runs]
    wall = time.monotonic() - w0
    b1, t1 = cpu_times()
    busy, avail = b1 - b0, t1 - t0
    print(f"{label:10s} wall {wall:7.1f} s  busy {busy:7.1f} core-s of {avail:7.1f} "
          f"({100 * busy / avail:5.1f}%)  exit codes {codes}", flush=True)
    return {"wall": wall, "util": busy / avail, "codes": codes}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=4)
    ap.add_argument("--order", choices=("parallel-first", "serial-first"),
                    default="parallel-first")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lab-bench-matrix-"))
    job = work / "matrix.yaml"
    job.write_text(JOB_HEAD + "".join(SETS[i % len(SETS)].format(i=i)
                                      for i in range(a.cells)))
    env = dict(os.environ, LAB_HISTORY=str(work / "history.sqlite"))
    ids = subprocess.run([sys.executable, "-m", "lab.cli", "matrix", str(job), "--list"],
                         capture_output=True, text=True, env=env,
                         check=True).stdout.split("\n")[1:]
    ids = [line.split()[0] for line in ids if line.strip()]
    print(f"{len(ids)} cells: {', '.join(ids)}; host cores: {os.cpu_count()}")
    # warm the caches (image, kernel assets) so neither measurement pays for them
    lab(["run", str(job), "--cell", ids[0], "-o", str(work / "warm")], env)
    parallel = [["run", str(job), "-o", str(work / "parallel")]]
    serial = [["run", str(job), "--cell", i, "-o", str(work / f"serial-{i}")] for i in ids]
    order = [("parallel", parallel), ("serial", serial)]
    if a.order == "serial-first":
        order.reverse()
    res = {name: measure(name, runs, env) for name, runs in order}
    p, s = res["parallel"], res["serial"]
    print(f"core utilisation: parallel {100 * p['util']:.1f}% of the ideal, "
          f"serial {100 * s['util']:.1f}%")
    print(f"wall time serial / parallel: {s['wall'] / p['wall']:.2f}x")
    print(f"results under {work}")
    return 0 if all(c == 0 for r in res.values() for c in r["codes"]) else 1


if __name__ == "__main__":
    sys.exit(main())
