"""What the runner needs of a machine, declared: the configuration of a boot
(BootConfig), and the small interface every machine offers (the real QEMU
Machine, and FakeMachine in lab/vm/fake.py for unit tests of the runner).
The runner creates machines through a MachineFactory it is given."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

from ..errors import InfraError
from ..guest.base import Guest
from ..image.build import Image
from ..kernel.artifact import KernelArtifact


class BootError(InfraError):
    """The guest did not come up; carries the console tail."""


class BootStage(enum.Enum):
    """How far a boot has come, in order (for progress displays)."""

    QEMU = "qemu started"
    KERNEL = "kernel booting"          # the console shows the kernel's banner
    USERSPACE = "userspace"            # lab-init (PID 1) says it runs
    SSHD = "sshd started"
    SSH = "ssh up"
    READY = "ready"                    # lab-init loaded the remaining drivers
    SHARED = "shared directories mounted"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Share:
    """A host directory the guest mounts read-write over virtio-9p, at the
    same absolute path (`lab boot --share`)."""

    host: Path

    @property
    def guest(self) -> str:
        return str(self.host)


@dataclass(frozen=True)
class BootConfig:
    kernel: KernelArtifact
    image: Image
    memory_mb: int = 2048
    cpus: int = 2
    nvme_mb: int = 1024
    pmem_mb: int = 0
    hung_task_timeout: int = 0
    extra_cmdline: str = ""
    boot_timeout: float = 180.0
    accel: str | None = None        # None: probe
    pvh: bool = True                # boot the vmlinux at its PVH entry when possible
    shares: tuple[Share, ...] = ()  # host directories mounted in the guest


@dataclass
class BootTimes:
    started: float = 0.0
    ssh_ready: float = 0.0

    @property
    def to_ssh(self) -> float:
        return self.ssh_ready - self.started



class MachineLike(Protocol):
    """The interface the runner and the workloads use."""

    cfg: BootConfig
    console_log: Path
    guest: Guest | None
    times: BootTimes
    qemu_version: str
    accel: object | None          # lab.vm.accel.AccelChoice: .accel, .reason
    spec: object | None           # lab.vm.spec.MachineSpec: .cmdline
    # told each BootStage as it is reached, with the seconds since qemu started
    on_stage: Callable[[BootStage, float], None] | None

    def start(self) -> None: ...
    def wait_for_ssh(self) -> Guest: ...
    def stop(self, grace: float = 5.0) -> None: ...
    def kill(self) -> None: ...

    @property
    def running(self) -> bool: ...
    @property
    def exit_code(self) -> int | None: ...   # qemu's status once exited, -N: signal N
    def console_text(self) -> str: ...
    def console_size(self) -> int: ...
    def sysrq(self, key: str) -> None: ...
    def nmi(self) -> None: ...
    def paused_reason(self) -> str | None: ...


# (config, work directory, log) -> a machine, not yet started
MachineFactory = Callable[[BootConfig, Path, Callable[[str], None]], MachineLike]
