"""MachineSpec: everything that decides a qemu command line, and the pure
function that renders it."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

from .devices import Device, escape

ACCELERATORS = ("kvm", "tcg")


@dataclass(frozen=True)
class MachineSpec:
    kernel: Path
    cmdline: str
    initrd: Path | None = None
    memory_mb: int = 2048
    cpus: int = 2
    accel: str = "tcg"
    devices: tuple[Device, ...] = field(default_factory=tuple)
    name: str = "lab"

    def argv(self, qemu: str = "qemu-system-x86_64") -> list[str]:
        if self.accel not in ACCELERATORS:
            raise ValueError(f"accel must be one of {ACCELERATORS}, got {self.accel!r}")
        machine_opts = ["pc", f"accel={self.accel}"]
        for d in self.devices:
            for o in d.machine_opts:
                if o not in machine_opts:
                    machine_opts.append(o)
        slots = sum(d.memory_slots for d in self.devices)
        extra = sum(d.memory_extra_mb for d in self.devices)
        mem = f"{self.memory_mb}M"
        if slots:
            mem += f",slots={slots},maxmem={self.memory_mb + extra}M"
        argv = [qemu, "-name", escape(self.name), "-machine", ",".join(machine_opts),
                "-cpu", "host" if self.accel == "kvm" else "max",
                "-smp", str(self.cpus), "-m", mem,
                "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
                "-kernel", str(self.kernel)]
        if self.initrd:
            argv += ["-initrd", str(self.initrd)]
        argv += ["-append", self.cmdline]
        for d in self.devices:
            argv += d.args()
        return argv

    def shell(self, qemu: str = "qemu-system-x86_64") -> str:
        """The argv as one copy-pasteable shell line (the reproducer)."""
        return shlex.join(self.argv(qemu))


def kernel_cmdline(*, hung_task_timeout: int = 0, extra: str = "") -> str:
    parts = ["console=ttyS0,115200", "root=/dev/vda", "rootfstype=ext4", "rw",
             "init=/sbin/lab-init", "panic=-1",
             "sysrq_always_enabled", "printk.time=1", "net.ifnames=0",
             "random.trust_cpu=on", "tsc=reliable", "no_timer_check"]
    if hung_task_timeout:
        # the detector scans once per interval (default: once per timeout),
        # so check often enough that a report follows within a few seconds
        parts += [f"sysctl.kernel.hung_task_timeout_secs={hung_task_timeout}",
                  f"sysctl.kernel.hung_task_check_interval_secs={min(5, hung_task_timeout)}",
                  "sysctl.kernel.hung_task_warnings=-1"]
    if extra:
        parts.append(extra)
    return " ".join(p for p in parts if p)
