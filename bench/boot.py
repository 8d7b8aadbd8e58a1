#!/usr/bin/env python3
"""Boot benchmark: image build cold and cached, boot-to-SSH, the kernel's
own time to reach init (from console timestamps), and their ratio, all
measured in one run. Also a breakdown of the boot: firmware+decompression,
kernel, initramfs, lab-init to sshd, SSH handshake.

    python bench/boot.py [--boots N] [--skip-cold] [--kernel distro|ARTIFACT_DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import tempfile
import threading
import time
from pathlib import Path

from lab.image.build import ensure
from lab.image.recipe import load_recipe
from lab.kernel.artifact import KernelArtifact, distro_kernel
from lab.vm.machine import BootConfig, Machine


def ts(console: str, pattern: str) -> float | None:
    m = re.search(r"^\[\s*(\d+\.\d+)\][^\n]*" + pattern, console, re.M)
    return float(m.group(1)) if m else None


class ConsoleWatch(threading.Thread):
    """Host wall time at which the console first shows a kernel timestamp."""

    def __init__(self, path: Path, t0: float):
        super().__init__(daemon=True)
        self.path, self.t0, self.first = path, t0, None
        self.stop = False

    def run(self):
        while not self.stop and self.first is None:
            try:
                if b"] Linux version" in self.path.read_bytes()[:20000]:
                    self.first = time.monotonic() - self.t0
            except OSError:
                pass
            time.sleep(0.02)


def one_boot(kernel: KernelArtifact, image, workdir: Path) -> dict:
    m = Machine(BootConfig(kernel=kernel, image=image, nvme_mb=256), workdir, log=lambda s: None)
    t0 = time.monotonic()
    watch = ConsoleWatch(m.console_log, t0)
    watch.start()
    with m:
        ready = time.monotonic() - t0
        to_ssh = m.times.ssh_ready - t0
        m.guest.run("true", timeout=30)
        console = m.console_text()
    watch.stop = True
    first = watch.first or 0.0
    init = ts(console, r"Run \S+ as init process")
    lab_init = ts(console, r"lab-init: filesystems mounted")
    sshd = ts(console, r"lab-init: sshd started")
    return {"to_ssh": to_ssh, "ready": ready, "qemu_to_kernel": first, "kernel_to_init": init,
            "kernel_to_lab_init": lab_init, "kernel_to_sshd": sshd,
            "handshake": to_ssh - first - (sshd or 0), "accel": m.accel.accel}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--boots", type=int, default=3)
    ap.add_argument("--skip-cold", action="store_true", help="skip the cold image build")
    ap.add_argument("--kernel", default="distro",
                    help="'distro' or a `lab build` artifact directory")
    args = ap.parse_args()
    recipe = load_recipe("debian-bookworm")
    if not args.skip_cold:
        with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as d:
            os.environ["LAB_CACHE_DIR"] = d
            t = time.monotonic()
            ensure(recipe, log=lambda s: None)
            print(f"image build, cold:          {time.monotonic() - t:7.2f} s")
            del os.environ["LAB_CACHE_DIR"]
    t = time.monotonic()
    image = ensure(recipe, log=lambda s: None)  # warm it if the real cache was empty
    t = time.monotonic()
    image = ensure(recipe, log=lambda s: None)
    print(f"image lookup, cached:       {time.monotonic() - t:7.3f} s")
    kernel = (distro_kernel() if args.kernel == "distro"
              else KernelArtifact.from_dir(Path(args.kernel)))
    rows = []
    for i in range(args.boots):
        with tempfile.TemporaryDirectory() as d:
            rows.append(one_boot(kernel, image, Path(d)))
    med = {k: statistics.median([r[k] for r in rows if r[k] is not None] or [0.0])
           for k in rows[0] if k != "accel"}
    print(f"kernel {kernel.release}, accelerator {rows[0]['accel']}, {len(rows)} boots, medians:")
    print(f"  boot to SSH (host wall):   {med['to_ssh']:7.2f} s")
    print(f"  boot to all devices ready: {med['ready']:7.2f} s  (lab-init done: drivers loaded)")
    print(f"  qemu start to kernel:      {med['qemu_to_kernel']:7.2f} s  (firmware, decompression)")
    print(f"  kernel to init:            {med['kernel_to_init']:7.2f} s  (console timestamp)")
    print(f"  kernel to lab-init:        {med['kernel_to_lab_init']:7.2f} s  (after the initramfs)")
    print(f"  kernel to sshd started:    {med['kernel_to_sshd']:7.2f} s")
    print(f"  sshd to SSH session:       {med['handshake']:7.2f} s  (host connect + handshake)")
    print(f"ratio boot-to-SSH / kernel-to-init:     {med['to_ssh'] / med['kernel_to_init']:5.2f}x")
    print(f"ratio boot-to-SSH / kernel-to-lab-init: {med['to_ssh'] / med['kernel_to_lab_init']:5.2f}x")


if __name__ == "__main__":
    main()
