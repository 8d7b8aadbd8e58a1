"""Choose the accelerator: KVM only when a short probe shows a guest really
runs under it (on some hosts /dev/kvm exists but a KVM guest hangs), else TCG.
The verdict is cached per host boot."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from .. import proc
from ..errors import CommandTimeout
from ..paths import cache_dir

PROBE_SECONDS = 8.0


@dataclass(frozen=True)
class AccelChoice:
    accel: str       # "kvm" or "tcg"
    reason: str


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def probe_kvm(kernel: Path, qemu: str = "qemu-system-x86_64") -> AccelChoice:
    """Boot `kernel` under KVM without a root disk; it runs if it prints its banner."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return AccelChoice("tcg", "/dev/kvm is missing or not accessible")
    argv = [qemu, "-machine", "pc,accel=kvm", "-cpu", "host", "-m", "256M", "-nodefaults",
            "-no-user-config", "-display", "none", "-no-reboot", "-serial", "stdio",
            "-kernel", str(kernel), "-append", "console=ttyS0 panic=-1 root=/dev/null"]
    start = time.monotonic()
    try:
        r = proc.run(argv, timeout=PROBE_SECONDS)
        out = r.stdout + r.stderr
    except CommandTimeout as e:
        out = e.output_tail
    took = time.monotonic() - start
    if "Linux version" in out:
        return AccelChoice("kvm", f"KVM probe booted a kernel in {took:.1f}s")
    return AccelChoice("tcg", f"/dev/kvm exists but a KVM guest printed nothing in "
                              f"{PROBE_SECONDS:g}s (probe hung)")


def choose(kernel: Path, qemu: str = "qemu-system-x86_64") -> AccelChoice:
    forced = os.environ.get("LAB_ACCEL")
    if forced in ("kvm", "tcg"):
        return AccelChoice(forced, "forced by LAB_ACCEL")
    cache = cache_dir() / "accel.json"
    boot = _boot_id()
    try:
        c = json.loads(cache.read_text())
        if c.get("boot_id") == boot:
            return AccelChoice(c["accel"], c["reason"] + " (cached for this host boot)")
    except (OSError, ValueError, KeyError):
        pass
    choice = probe_kvm(kernel, qemu)
    cache.write_text(json.dumps({"boot_id": boot, "accel": choice.accel,
                                 "reason": choice.reason}))
    return choice
