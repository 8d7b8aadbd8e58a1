"""A running QEMU guest: a context manager that launches qemu with a console
log and a QMP socket, waits for SSH, and always tears down: a graceful quit
with a bounded wait, then a hard kill. No qemu outlives the Machine (nor lab:
children die with their parent through PR_SET_PDEATHSIG)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from .. import proc
from ..errors import InfraError
from ..guest.base import GuestUnreachable
from ..guest.ssh import SSHGuest
from ..image.modules import initramfs, modules_disk
from . import accel as accel_mod
from .devices import (Device, Nvdimm, NvmeDrive, QmpSocket, SerialSocket, UserNet,
                      Virtio9p, VirtioBlk, VirtioRng)
from .base import BootConfig, BootError, BootStage, BootTimes, Share
from .pvh import pvh_kernel
from .qmp import Qmp
from .spec import MachineSpec, kernel_cmdline

QEMU = "qemu-system-x86_64"
SSHD_MARKER = b"lab-init: sshd started"   # printed by lab/image/lab-init.sh
FALLBACK_CONNECT_AFTER = 20.0             # seconds, for images without the marker
# console lines that tell how far a boot has come (lab-init writes to /dev/kmsg)
STAGE_MARKERS = ((BootStage.KERNEL, b"Linux version "), (BootStage.USERSPACE, b"lab-init: "),
                 (BootStage.SSHD, SSHD_MARKER))
MSIZE_9P = 262144                         # the virtio transport's limit is ~512 KiB


def share_tag(i: int) -> str:
    return f"labshare{i}"


def mount_command(share: Share, tag: str) -> str:
    """The guest's mount of a --share directory, at the host's path (the
    modules first: Debian's kernel has 9p as modules)."""
    where = shlex.quote(share.guest)
    return (f"modprobe -qa 9pnet_virtio 9p 2>/dev/null; mkdir -p {where} && "
            f"mount -t 9p -o trans=virtio,version=9p2000.L,msize={MSIZE_9P} {tag} {where}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path: Path, n: int = 40) -> str:
    try:
        data = path.read_bytes()[-65536:].decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-n:])


class Machine:
    """Usage: with Machine(cfg, workdir) as m: m.guest.run(...)."""

    def __init__(self, cfg: BootConfig, workdir: Path, log=print):
        self.cfg = cfg
        self.workdir = Path(workdir)
        self.log = log
        self.console_log = self.workdir / "console.log"
        self.qemu_log = self.workdir / "qemu.log"
        # unix socket paths must stay short (108 bytes): keep them in /tmp
        self.sockdir = Path(tempfile.gettempdir()) / f"lab-vm-{os.getpid()}-{id(self):x}"
        self.diskdir = self.workdir / "disks"
        self.qmp = Qmp(self.sockdir / "qmp.sock")
        self.proc: subprocess.Popen | None = None
        self.guest: SSHGuest | None = None
        self.accel: accel_mod.AccelChoice | None = None
        self.times = BootTimes()
        self.ssh_port = 0
        self.spec: MachineSpec | None = None
        self.qemu_version = ""
        self.on_stage = None
        self._stages: set[BootStage] = set()
        self._console_seen = 0

    # --- spec -------------------------------------------------------------
    def build_spec(self, ssh_port: int, accel: str) -> MachineSpec:
        c = self.cfg
        devices: list[Device] = [
            SerialSocket(self.sockdir / "ser0.sock", self.console_log),
            QmpSocket(self.sockdir / "qmp.sock"),
            VirtioBlk("root", self.diskdir / "root.qcow2", format="qcow2", serial="labroot"),
        ]
        mods = modules_disk(c.kernel)
        if mods:
            devices.append(VirtioBlk("mods", mods, readonly=True, serial="labmods"))
        if c.nvme_mb:
            devices.append(NvmeDrive("nvme0", self.diskdir / "nvme0.img"))
        if c.pmem_mb:
            devices.append(Nvdimm("nvdimm0", self.diskdir / "pmem0.img", c.pmem_mb))
        devices += [Virtio9p(f"fs{i}", sh.host, share_tag(i)) for i, sh in enumerate(c.shares)]
        devices += [UserNet("net0", ssh_port), VirtioRng()]
        kernel = (pvh_kernel(c.kernel.image) if c.pvh else None) or c.kernel.image
        return MachineSpec(kernel=kernel, initrd=initramfs(c.kernel),
                           cmdline=kernel_cmdline(hung_task_timeout=c.hung_task_timeout,
                                                  extra=c.extra_cmdline),
                           memory_mb=c.memory_mb, cpus=c.cpus, accel=accel,
                           devices=tuple(devices), name=f"lab-{c.kernel.release}")

    def _prepare_disks(self) -> None:
        self.diskdir.mkdir(parents=True, exist_ok=True)
        proc.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b",
                  str(self.cfg.image.rootfs), str(self.diskdir / "root.qcow2")],
                 timeout=60, check=True)
        for name, mb in (("nvme0.img", self.cfg.nvme_mb), ("pmem0.img", self.cfg.pmem_mb)):
            if mb:
                with open(self.diskdir / name, "wb") as f:
                    f.truncate(mb * 2**20)

    # --- lifecycle --------------------------------------------------------
    def start(self) -> None:
        qemu = proc.which(QEMU, "qemu-system-x86")
        proc.which("qemu-img", "qemu-utils")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.sockdir.mkdir(mode=0o700, exist_ok=True)
        self.qemu_version = _qemu_version(qemu)
        self.accel = (accel_mod.AccelChoice(self.cfg.accel, "requested")
                      if self.cfg.accel else accel_mod.choose(self.cfg.kernel.image, qemu))
        self._prepare_disks()
        for attempt in range(5):
            self.ssh_port = free_port()
            self.spec = self.build_spec(self.ssh_port, self.accel.accel)
            argv = self.spec.argv(qemu)
            (self.workdir / "qemu.cmdline").write_text(self.spec.shell(qemu) + "\n")
            self.console_log.unlink(missing_ok=True)
            self._console_seen = 0
            self._stages = set()
            with open(self.qemu_log, "wb") as out:
                self.times.started = time.monotonic()
                self.proc = proc.spawn(argv, stdout=out, stderr=subprocess.STDOUT)
            try:
                self.qmp.connect(timeout=30, alive=lambda: self.proc.poll() is None)
                self._stage(BootStage.QEMU)
                return
            except InfraError:
                err = tail(self.qemu_log, 20)
                proc.terminate(self.proc)
                if "host forwarding rule" in err or "Address already in use" in err:
                    self.log(f"port {self.ssh_port} taken, retrying with another")
                    continue
                raise InfraError(f"qemu failed to start (exit {self.proc.returncode}):\n{err}\n"
                                 f"command: {self.workdir / 'qemu.cmdline'}") from None
        raise InfraError("could not find a free 127.0.0.1 port for SSH forwarding in 5 tries")

    def wait_for_ssh(self) -> SSHGuest:
        deadline = self.times.started + self.cfg.boot_timeout
        next_try = self.times.started + FALLBACK_CONNECT_AFTER
        while True:
            if self.proc.poll() is not None:
                raise BootError(f"qemu exited with code {self.proc.returncode} before the guest "
                                f"answered SSH; console tail:\n{tail(self.console_log)}\n"
                                f"qemu: {tail(self.qemu_log, 5)}")
            if time.monotonic() > deadline:
                raise BootError(f"guest did not answer SSH on 127.0.0.1:{self.ssh_port} within "
                                f"{self.cfg.boot_timeout:g}s; console tail:\n"
                                f"{tail(self.console_log)}")
            # Connect once lab-init says sshd is up (its marker on the console);
            # without the marker (an image without lab-init), try every few
            # seconds. A connect made before the guest's network is up hangs
            # in QEMU's forwarder until the banner timeout, hence the marker.
            marker = self._console_has(SSHD_MARKER)
            if not marker and time.monotonic() < next_try:
                time.sleep(0.05)
                continue
            g = SSHGuest(self.ssh_port, self.cfg.image.ssh_key, self.cfg.image.host_key,
                         banner_timeout=30 if marker else 3)
            try:
                g.connect()
            except GuestUnreachable:
                g.close()
                next_try = time.monotonic() + 3
                time.sleep(0.2)
                continue
            self.times.ssh_ready = time.monotonic()
            self.guest = g
            self._stage(BootStage.SSH)
            self._wait_ready(deadline)
            self._stage(BootStage.READY)
            self._mount_shares()
            return g

    def _stage(self, stage: BootStage) -> None:
        """Tell on_stage, once a stage, how far the boot has come."""
        if stage in self._stages:
            return
        self._stages.add(stage)
        if self.on_stage is not None:
            self.on_stage(stage, time.monotonic() - self.times.started)

    def _mount_shares(self) -> None:
        """Mount each --share directory at its host path (over SSH, so the
        image needs nothing new); a kernel without 9p fails clearly."""
        for i, share in enumerate(self.cfg.shares):
            r = self.guest.run(mount_command(share, share_tag(i)), timeout=60)
            if not r.ok:
                fs = self.guest.run("grep -w 9p /proc/filesystems", timeout=30)
                why = ("the guest kernel has no 9p filesystem (CONFIG_NET_9P, "
                       "CONFIG_NET_9P_VIRTIO, CONFIG_9P_FS as =y or modules); boot with "
                       "--no-share or enable them" if not fs.ok else "mount failed")
                raise BootError(f"cannot mount the shared directory {share.host} in the "
                                f"guest: {why}: {(r.stderr or r.stdout).strip()}")
        if self.cfg.shares:
            self._stage(BootStage.SHARED)

    def _console_has(self, marker: bytes) -> bool:
        """Whether the console log shows `marker`, reading only what is new."""
        start = max(0, self._console_seen - len(marker))  # a marker split across reads
        try:
            with open(self.console_log, "rb") as f:
                f.seek(start)
                chunk = f.read()
        except OSError:
            return False
        self._console_seen = start + len(chunk)
        for stage, text in STAGE_MARKERS:
            if text in chunk:
                self._stage(stage)
        return marker in chunk

    def _wait_ready(self, deadline: float) -> None:
        """lab-init starts sshd first, then loads the remaining drivers and
        touches /run/lab-ready: wait for that so devices are all there."""
        budget = max(5.0, deadline - time.monotonic())
        r = self.guest.run(f"i=0; while [ ! -e /run/lab-ready ]; do [ $i -ge {int(budget * 10)} ]"
                           " && exit 1; sleep 0.1; i=$((i+1)); done", timeout=budget + 30)
        if not r.ok:
            raise BootError(f"guest answered SSH but lab-init did not finish within "
                            f"{budget:.0f}s; console tail:\n{tail(self.console_log)}")

    def __enter__(self) -> "Machine":
        try:
            self.start()
            self.wait_for_ssh()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self, grace: float = 5.0) -> None:
        """Sync the guest if it answers, QMP quit, then SIGTERM/SIGKILL."""
        if self.guest is not None:
            try:
                if self.running and self.paused_reason() is None:
                    self.guest.run("sync", timeout=10)
            except Exception:  # noqa: BLE001 - a dead guest is expected here
                pass
            self.guest.close()
            self.guest = None
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.qmp.cmd("quit")
            except Exception:  # noqa: BLE001
                pass
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        self.qmp.close()
        if self.proc is not None:
            proc.terminate(self.proc, grace=2.0)
        shutil.rmtree(self.sockdir, ignore_errors=True)
        shutil.rmtree(self.diskdir, ignore_errors=True)

    def kill(self) -> None:
        """Kill qemu now, from any thread (Ctrl-C of a matrix run): the thread
        using this machine then sees a dead guest and cleans up with stop()."""
        if self.proc is not None:
            proc.terminate(self.proc, grace=1.0)

    # --- evidence ---------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def exit_code(self) -> int | None:
        """qemu's exit status once it has exited (-N: killed by signal N), None
        while it runs or before start: says whether a guest that stopped
        answering took qemu with it, and how."""
        return None if self.proc is None else self.proc.poll()

    def console_text(self) -> str:
        try:
            return self.console_log.read_text(errors="replace")
        except OSError:
            return ""

    def console_size(self) -> int:
        try:
            return self.console_log.stat().st_size
        except OSError:
            return 0

    def sysrq(self, key: str) -> None:
        """Send a magic sysrq through the serial console: a break, then the key.
        Works when SSH is dead (needs sysrq_always_enabled, which lab sets)."""
        sock = self.sockdir / "ser0.sock"
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(str(sock))
            self.qmp.cmd("chardev-send-break", id="ser0")
            time.sleep(0.2)
            s.sendall(key.encode())
            time.sleep(0.5)

    def nmi(self) -> None:
        self.qmp.cmd("inject-nmi")

    def paused_reason(self) -> str | None:
        """Why qemu stopped the guest on its own (None while it runs): an IO
        error on a disk (werror=enospc: the host filesystem under it is full),
        named with the disk file and its filesystem's free space."""
        try:
            status = self.qmp.cmd("query-status")
        except Exception:  # noqa: BLE001 - no QMP: nothing to say
            return None
        if status.get("status") != "io-error":
            return None
        return io_error_text(self.qmp.cmd("query-block"))


def io_error_text(blocks: list[dict]) -> str:
    """query-block's answer -> which disk hit which error, and how full its
    filesystem is (pure apart from statvfs)."""
    bad = [b for b in blocks if b.get("io-status") not in (None, "ok")]
    parts = []
    for b in bad or blocks[:1]:
        f = (b.get("inserted") or {}).get("file", "?")
        err = {"nospace": "no space left on device"}.get(b.get("io-status"),
                                                         b.get("io-status") or "IO error")
        try:
            st = os.statvfs(Path(f).parent)
            where = (f" (its filesystem has {st.f_bavail * st.f_frsize // 2**20} MiB free of "
                     f"{st.f_blocks * st.f_frsize // 2**20} MiB)")
        except OSError:
            where = ""
        parts.append(f"{err} writing {f}{where}")
    return "qemu paused the guest: " + "; ".join(parts)


def _qemu_version(qemu: str) -> str:
    r = proc.run([qemu, "--version"], timeout=30)
    m = re.search(r"version (\S+)", r.stdout)
    return m.group(1) if m else r.stdout.strip()


def kernel_time_to_init(console: str) -> float | None:
    """The kernel's own timestamp when it started init (from the console)."""
    m = re.search(r"^\[\s*(\d+\.\d+)\].*Run \S+ as init process", console, re.M)
    return float(m.group(1)) if m else None


__all__ = ["BootConfig", "BootError", "Machine", "kernel_time_to_init", "free_port"]
