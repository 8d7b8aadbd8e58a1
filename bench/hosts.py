"""Wall time of a 4-cell matrix (the distro kernel, the smoke job's fio in
four workload sets, 1 vCPU guests) run with `lab hosts run` on one
namespace host and on two (tests/integration/nshosts.py: each its own
sshd, address, user and cache), as root:

    python bench/hosts.py [--layouts shared,pinned]

Two layouts, since the namespace hosts share this machine's cores:
- shared: every host may use every core (what the integration test does).
  Two hosts then run 4 guests on the same 2 cores that one host ran 2 at a
  time on: no more CPU, so no faster.
- pinned: each host gets cores of its own (taskset on its sshd, inherited
  by its lab and qemu): one host = 1 core, two hosts = 1 core each, i.e.
  what two real 1-core machines do against one.
Prints each run's wall time (lab hosts run, start to end: probe, ansible,
boots, fetch, merge), each host's `lab run` seconds, and the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lab.image.build import ensure  # noqa: E402
from lab.image.recipe import load_recipe  # noqa: E402
from lab.kernel.artifact import distro_kernel  # noqa: E402
from lab.paths import cache_dir  # noqa: E402
from tests.integration.nshosts import NamespaceHosts  # noqa: E402
from tests.integration.test_hosts import JOB  # noqa: E402


def run(count: int, cpus: list[str | None], job: Path, work: Path) -> dict:
    image = ensure(load_recipe("debian-bookworm"))
    out = work / f"run-{count}-{'-'.join(c or 'all' for c in cpus)}"
    with NamespaceHosts(count, cache_from=cache_dir(), image_dir=image.dir,
                        release=distro_kernel().release, cpus=cpus) as hs:
        t = time.monotonic()
        r = subprocess.run([sys.executable, "-m", "lab.cli", "hosts", "run", str(job), "-i",
                            str(hs.inventory()), "-o", str(out), "--poll", "2"], cwd=REPO,
                           capture_output=True, text=True,
                           env=dict(os.environ, LAB_HISTORY=str(work / "history.sqlite")))
        wall = time.monotonic() - t
    if r.returncode != 0:
        sys.exit(f"lab hosts run exited {r.returncode}:\n{r.stderr[-3000:]}")
    s = json.loads((out / "summary.json").read_text())
    return {"hosts": count, "cpus": cpus, "wall_s": round(wall, 1),
            "lab_run_s": {h["name"]: h["seconds"] for h in s["hosts"]},
            "cells": {h["name"]: len(h["cells"]) for h in s["hosts"]}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layouts", default="shared,pinned")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lab-bench-hosts-"))
    job = work / "fanout4.yaml"
    job.write_text(JOB)
    ncores = len(os.sched_getaffinity(0))
    print(f"machine: {ncores} cores; load average {os.getloadavg()[0]:.1f} at start")
    layouts = {"shared": ([None], [None, None]), "pinned": (["0"], ["0", "1"])}
    for name in args.layouts.split(","):
        one_cpus, two_cpus = layouts[name]
        one = run(1, one_cpus, job, work)
        two = run(2, two_cpus, job, work)
        print(f"{name}: one host {one['wall_s']}s {one['lab_run_s']}; two hosts "
              f"{two['wall_s']}s {two['lab_run_s']} cells {two['cells']}; "
              f"two/one = {two['wall_s'] / one['wall_s']:.2f}x")
    print(f"load average {os.getloadavg()[0]:.1f} at the end; results in {work}")


if __name__ == "__main__":
    main()
