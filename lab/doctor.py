"""`lab doctor`: what this host has and lacks, and what to install."""

from __future__ import annotations

import os
import shutil
import sys

from . import proc
from .paths import cache_dir

CHECKS = [  # binary, Debian package, what needs it
    ("qemu-system-x86_64", "qemu-system-x86", "booting guests"),
    ("qemu-img", "qemu-utils", "throwaway disk overlays"),
    ("mmdebstrap", "mmdebstrap", "building guest images"),
    ("mke2fs", "e2fsprogs", "packing images"),
    ("ssh-keygen", "openssh-client", "per-image SSH keys"),
    ("busybox", "busybox-static", "the initramfs for distro kernels"),
    ("git", "git", "kernel trees and patch series"),
    ("make", "make", "kernel builds"),
    ("gcc", "build-essential", "kernel builds"),
    ("ccache", "ccache", "fast kernel rebuilds (optional)"),
]


def report(out=None) -> int:
    out = out or sys.stdout     # looked up now: redirected output is honoured
    missing = []
    for binary, pkg, why in CHECKS:
        path = shutil.which(binary)
        print(f"{'ok ' if path else 'MISSING'} {binary:20} {path or f'apt-get install {pkg}'}"
              f"  ({why})", file=out)
        if not path and pkg not in ("ccache",):
            missing.append(pkg)
    if shutil.which("qemu-system-x86_64"):
        v = proc.run(["qemu-system-x86_64", "--version"], timeout=30).stdout.splitlines()[0]
        print(f"    qemu: {v}", file=out)
    try:
        from .kernel.artifact import distro_kernel
        k = distro_kernel()
        print(f"ok  distro kernel        {k.release} ({k.image})", file=out)
        from .vm.accel import choose
        a = choose(k.image)
        print(f"ok  accelerator          {a.accel}: {a.reason}", file=out)
    except Exception as e:  # noqa: BLE001 - doctor reports, it does not stop
        print(f"MISSING distro kernel: {e}", file=out)
        missing.append("linux-image-amd64")
    st = os.statvfs(cache_dir())
    free_gb = st.f_bavail * st.f_frsize / 2**30
    print(f"{'ok ' if free_gb > 10 else 'LOW'} free disk           {free_gb:.1f} GiB in "
          f"{cache_dir()} (images ~2 GiB, a kernel build ~5 GiB)", file=out)
    if os.geteuid() != 0:
        print("note: building images needs root (mmdebstrap + mke2fs -d keep root ownership)",
              file=out)
    if missing:
        print(f"\ninstall: apt-get install {' '.join(sorted(set(missing)))}", file=out)
        return 2
    return 0
