#!/usr/bin/env python3
"""What pin tracing costs: in one boot, a workload run plainly, then the
same workload as lab's traced rerun (lab/pintrace/rerun.py: discovery,
probes, the run, the pins settling, reading the trace back, teardown), with
the rerun's steps timed from its command log.

    python bench/pintrace.py --kernel ARTIFACT_DIR|distro [--workload rdma]
                             [--options '{"targets": ["ext4"]}']
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from pathlib import Path

from lab.image.build import ensure
from lab.image.recipe import load_recipe
from lab.kernel.artifact import KernelArtifact, distro_kernel
from lab.pintrace.rerun import traced_rerun
from lab.vm.machine import BootConfig, Machine
from lab.workloads import lookup
from lab.workloads.base import WorkloadContext

STEPS = (("discovery", "--- vmstat"), ("setup", "p:labpin/"), ("stop + read", "cat trace >"),
         ("teardown", "|| exit 0"))


def steps(log: str) -> dict[str, float]:
    """Seconds of the tracing's own guest commands, from commands.log."""
    out = {}
    for block in re.split(r"^\$ ", log, flags=re.M)[1:]:
        m = re.search(r"^\[exit -?\d+, ([\d.]+)s\]", block, re.M)
        for name, marker in STEPS:
            if m and marker in block.split("\n[exit")[0]:
                out[name] = out.get(name, 0.0) + float(m[1])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kernel", default="distro")
    ap.add_argument("--workload", default="rdma")
    ap.add_argument("--options", default='{"targets": ["ext4"]}')
    a = ap.parse_args()
    kernel = distro_kernel() if a.kernel == "distro" else KernelArtifact.from_dir(Path(a.kernel))
    W = lookup(a.workload)
    opts = W.parse_options(json.loads(a.options), file="--options", where="options")
    cfg = BootConfig(kernel=kernel, image=ensure(load_recipe("debian-bookworm")),
                     memory_mb=2048, cpus=2, nvme_mb=1024, boot_timeout=300)
    with tempfile.TemporaryDirectory() as tmp, Machine(cfg, Path(tmp) / "m") as m:
        ctx = WorkloadContext(guest=m.guest, outdir=Path(tmp) / "wl", timeout=600, machine=m,
                              kernel=kernel, log=lambda s: None)
        t = time.monotonic()
        W(opts).run(ctx)
        plain = time.monotonic() - t
        out = traced_rerun(ctx, lambda c: W(opts).run(c))
        log = (ctx.outdir / "pintrace" / "commands.log").read_text()
        size = (ctx.outdir / "pintrace" / "trace.txt").stat().st_size
    print(f"kernel {kernel.release}, workload {a.workload} {a.options}")
    print(f"  plain run            {plain:6.1f} s")
    print(f"  traced rerun         {out.seconds:6.1f} s  ({out.state}: {out.note})")
    for name, secs in steps(log).items():
        print(f"    {name:<18} {secs:6.1f} s")
    print(f"  trace                {size / 1024:6.0f} KiB")
    print(f"  added by tracing     {out.seconds - plain:6.1f} s over a plain rerun")


if __name__ == "__main__":
    main()
