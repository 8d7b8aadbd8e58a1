"""A fake machine for unit tests of the runner and the scheduler (shipped
with lab, like lab/guest/fake.py): no qemu, a FakeGuest answering commands,
and a script saying what goes wrong: the boot fails, the kernel panics
during a command, qemu is killed during one (kill -9), a command hangs, a
command makes the kernel WARN.

    factory = FakeMachineFactory(FakeScript(panic_on=r"dd if="))
    run_job(job, out, machine_factory=factory)
    factory.machines[0].guest.commands   # what the runner ran
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import CommandTimeout
from ..guest.base import GuestUnreachable
from ..guest.fake import FakeGuest
from ..proc import Result
from .base import BootConfig, BootError, BootStage, BootTimes

WARNING = ("------------[ cut here ]------------\n"
           "WARNING: CPU: 0 PID: 42 at mm/gup.c:123 unpin_user_pages+0x10/0x20\n"
           "Call Trace:\n"
           " <TASK>\n"
           " unpin_user_pages+0x10/0x20\n"
           " io_uring_release+0x20/0x40\n"
           " </TASK>\n"
           "---[ end trace 0000000000000000 ]---")


@dataclass(frozen=True)
class FakeAccel:
    accel: str = "tcg"
    reason: str = "fake machine"


@dataclass(frozen=True)
class FakeSpec:
    cmdline: str = "console=ttyS0"


@dataclass
class FakeScript:
    """What the fake machines of a factory do; patterns match guest commands."""

    boot_fails: bool = False
    boots_before_failing: int | None = None   # that many boots come up, the later ones fail
    boot_panics: bool = False
    boot_qemu_dies: bool = False       # qemu dies while the guest boots (qemu_exit_code)
    boot_seconds: float = 0.0          # time start() + wait_for_ssh() take
    command_seconds: float = 0.0       # time every command slow_on matches takes
    slow_on: str | None = None         # (a kill of qemu ends it at once, unreachable)
    slow_after: int = 0                # the first N it matches (over the factory) are quick
    panic_on: str | None = None        # the guest dies while running it
    qemu_dies_on: str | None = None    # qemu is killed while running it (no panic)
    qemu_exit_code: int = -9           # ... and exits so (-9: SIGKILL, as kill -9)
    hang_on: str | None = None         # the command times out
    warn_on: str | None = None         # the kernel logs a WARNING while running it
    pause_on: str | None = None        # qemu pauses the guest (a full host filesystem)
    answers: list[tuple[str, Result]] = field(default_factory=list)


class FakeMachine:
    """Implements lab.vm.base.MachineLike."""

    def __init__(self, cfg: BootConfig, workdir: Path, log: Callable[[str], None],
                 script: FakeScript, factory: "FakeMachineFactory"):
        self.cfg = cfg
        self.workdir = Path(workdir)
        self.log = log
        self.script = script
        self.factory = factory
        self.console_log = self.workdir / "console.log"
        self.guest: FakeGuest | None = None
        self.times = BootTimes()
        self.qemu_version = "fake"
        self.accel = FakeAccel()
        self.spec = FakeSpec()
        self.on_stage: Callable[[BootStage, float], None] | None = None
        self.stages: list[BootStage] = []     # the stages reached, in order
        self._running = False
        self._gone = threading.Event()    # qemu stopped or killed
        self._paused: str | None = None
        self._exit_code: int | None = None
        self._console: list[str] = []

    # --- lifecycle --------------------------------------------------------
    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.times.started = time.monotonic()
        self._running = True
        self.factory._started(self)
        self._stage(BootStage.QEMU)
        self._say(f"Linux version {self.cfg.kernel.release} (fake)")
        self._stage(BootStage.KERNEL)

    def _stage(self, stage: BootStage) -> None:
        self.stages.append(stage)
        if self.on_stage is not None:
            self.on_stage(stage, time.monotonic() - self.times.started)

    def wait_for_ssh(self) -> FakeGuest:
        s = self.script
        if self._gone.wait(s.boot_seconds):       # qemu killed while the guest boots
            raise BootError(f"qemu exited with code {self._exit_code} before the guest "
                            "answered SSH")
        if s.boot_qemu_dies:
            self._die(s.qemu_exit_code)
            raise BootError(f"qemu exited with code {self._exit_code} before the guest "
                            "answered SSH")
        if s.boot_panics:
            self._say("Kernel panic - not syncing: VFS: Unable to mount root fs")
            self._die()
            raise BootError("qemu exited with code 0 before the guest answered SSH")
        booted = sum(1 for m in self.factory.machines if m.guest is not None)
        if s.boot_fails or (s.boots_before_failing is not None
                            and booted >= s.boots_before_failing):
            raise BootError(f"guest did not answer SSH within {self.cfg.boot_timeout:g}s")
        g = FakeGuest(list(s.answers))
        g.answer(r"^uname -r$", self.cfg.kernel.release + "\n")
        for pat, act in ((s.panic_on, self._panic), (s.qemu_dies_on, self._qemu_dies),
                         (s.hang_on, self._hang), (s.warn_on, self._warn),
                         (s.slow_on, self._slow), (s.pause_on, self._pause)):
            if pat:
                g.answers.append((re.compile(pat), act))
        self._stage(BootStage.USERSPACE)
        self._stage(BootStage.SSHD)
        self.guest = g
        self.times.ssh_ready = time.monotonic()
        self._stage(BootStage.SSH)
        self._stage(BootStage.READY)
        if self.cfg.shares:
            self._stage(BootStage.SHARED)
        return g

    def stop(self, grace: float = 5.0) -> None:
        if self._running:
            self._die()

    def kill(self) -> None:
        self.stop()

    def _die(self, exit_code: int = 0) -> None:
        self._running = False
        self._gone.set()
        if self._exit_code is None:
            self._exit_code = exit_code
        if self.guest is not None:
            self.guest.up = False
        self.factory._stopped(self)

    @property
    def running(self) -> bool:
        return self._running

    @property
    def exit_code(self) -> int | None:
        return None if self._running else self._exit_code

    # --- scripted behaviour -------------------------------------------------
    def _say(self, line: str) -> None:
        self._console.append(f"[    1.000000] {line}\n")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.console_log.write_text("".join(self._console))

    def _ok(self, cmd: str) -> Result:
        return Result(("sh", "-c", cmd), 0, "", "", self.script.command_seconds)

    def _slow(self, cmd: str) -> Result:
        """command_seconds, unless qemu is killed meanwhile: then, as with a
        real SSH session, the command ends at once and the guest is gone."""
        if self.factory._count_slow() <= self.script.slow_after:
            return self._ok(cmd)
        if self._gone.wait(self.script.command_seconds):
            raise GuestUnreachable(f"guest stopped answering SSH while running {cmd!r}: "
                                   "Socket is closed")
        return self._ok(cmd)

    def _panic(self, cmd: str) -> Result:
        self._say("Kernel panic - not syncing: Fatal exception")
        self._die()
        raise GuestUnreachable(f"the guest died while running: {cmd}")

    def _qemu_dies(self, cmd: str) -> Result:
        """qemu is gone under a running command, the kernel none the wiser."""
        self._die(self.script.qemu_exit_code)
        raise GuestUnreachable(f"guest stopped answering SSH while running {cmd!r}: "
                               "Socket is closed")

    def _hang(self, cmd: str) -> Result:
        raise CommandTimeout(["ssh", cmd], 1.0, "")

    def _pause(self, cmd: str) -> Result:
        self._paused = ("qemu paused the guest: no space left on device writing "
                        f"{self.workdir}/disks/nvme0.img")
        time.sleep(2.0)               # a paused guest answers nothing
        raise CommandTimeout(["ssh", cmd], 2.0, "")

    def paused_reason(self) -> str | None:
        return self._paused

    def _warn(self, cmd: str) -> Result:
        self.guest.kmsg.extend(WARNING.splitlines())
        self._say(WARNING)
        return self._ok(cmd)

    # --- evidence ---------------------------------------------------------
    def console_text(self) -> str:
        return "".join(self._console)

    def console_size(self) -> int:
        return len(self.console_text())

    def sysrq(self, key: str) -> None:
        self._say(f"sysrq: {'Show Blocked State' if key == 'w' else 'key ' + key}")

    def nmi(self) -> None:
        self._say("NMI received")


class FakeMachineFactory:
    """A MachineFactory of FakeMachines that records what it made and how
    many ran at once (the scheduler's tests check it never oversubscribes)."""

    def __init__(self, script: FakeScript | None = None,
                 scripts: dict[str, FakeScript] | None = None):
        self.script = script or FakeScript()
        self.scripts = scripts or {}       # kernel release -> its own script
        self.machines: list[FakeMachine] = []
        self.running: list[FakeMachine] = []
        self.peak_cpus = 0
        self.peak_machines = 0
        self.slow_commands = 0             # how many commands slow_on matched
        self._lock = threading.Lock()

    def __call__(self, cfg: BootConfig, workdir: Path, log) -> FakeMachine:
        m = FakeMachine(cfg, workdir, log, self.scripts.get(cfg.kernel.release, self.script),
                        self)
        with self._lock:
            self.machines.append(m)
        return m

    def _started(self, m: FakeMachine) -> None:
        with self._lock:
            self.running.append(m)
            self.peak_machines = max(self.peak_machines, len(self.running))
            self.peak_cpus = max(self.peak_cpus, sum(x.cfg.cpus for x in self.running))

    def _count_slow(self) -> int:
        with self._lock:
            self.slow_commands += 1
            return self.slow_commands

    def _stopped(self, m: FakeMachine) -> None:
        with self._lock:
            if m in self.running:
                self.running.remove(m)
